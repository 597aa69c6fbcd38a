from django.apps import AppConfig


class LifetimeConfig(AppConfig):
    name = "lifetime"
    verbose_name = "LifeTime console"
