from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The bottom layer: actors, refusals, the audit trail, secrets at rest, service accounts,
    sign-in.

    Its label stays ``lifetime`` (the package it grew in) so that its tables and migrations keep
    their names.
    """

    name = "core"
    label = "lifetime"
    verbose_name = "LifeTime console"

    def ready(self) -> None:
        # Receivers of sign-in, sign-out, failed sign-in and lockout: audit rows.
        from core import (
            checks,  # noqa: F401 - registers the system checks of the console's settings
            signin,  # noqa: F401
        )
