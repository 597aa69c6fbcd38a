from django.apps import AppConfig


class LifetimeConfig(AppConfig):
    name = "lifetime"
    verbose_name = "LifeTime console"

    def ready(self) -> None:
        # Receivers of sign-in, sign-out, failed sign-in and lockout: audit rows.
        from lifetime import signin  # noqa: F401
