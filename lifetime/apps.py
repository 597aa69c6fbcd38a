from django.apps import AppConfig


class LifetimeConfig(AppConfig):
    name = "lifetime"
    verbose_name = "LifeTime console"

    def ready(self) -> None:
        from lifetime import checks  # noqa: F401 - registers the system checks
