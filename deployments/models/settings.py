"""The values of applications' settings per environment (what each manifest declares in ``[settings]``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployments.models.catalog import Application
from environments.models import Environment


class SettingValue(models.Model):
    """The value of one setting of one application in one environment. A secret is kept only
    encrypted (``value_encrypted``, core encryption) and never read back for people."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63)
    value = models.JSONField(null=True, blank=True)
    secret = models.BooleanField(default=False)
    value_encrypted = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "application", "name"], name="one_setting_value_per_env")
        ]

    def __str__(self) -> str:
        return f"{self.application.name}.{self.name} in {self.environment.name}"
