"""Mobile applications: their configuration per environment and the packages built for it."""

from __future__ import annotations

from django.db import models

from deployments.models.catalog import Application, ApplicationVersion
from environments.models import Environment


class MobileAppConfig(models.Model):
    """A mobile application's configuration for one environment (LifeTime: configure before deploying)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="mobile_configs")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="mobile_configs")
    app_identifier = models.CharField(max_length=200)
    server_url = models.URLField()
    app_version = models.CharField(
        max_length=50, blank=True, help_text="Version the package shows in the stores; the deployed version if blank."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "application"], name="one_mobile_config")]

    def __str__(self) -> str:
        return f"{self.application.name} on {self.environment.name}"


class MobilePackage(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="mobile_packages")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="mobile_packages")
    version = models.ForeignKey(ApplicationVersion, on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey("DeploymentPlan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    native_hash = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField(default=0)
    # What the package was built with, as shown on the environment's mobile page.
    app_identifier = models.CharField(max_length=200, blank=True)
    server_url = models.URLField(blank=True)
    app_version = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.application.name} package {self.sha256[:12]} for {self.environment.name}"

    @property
    def file_name(self) -> str:
        return (
            f"{self.application.name}-{self.environment.name}-{self.app_version or self.version.version}.zip".replace(
                " ", "-"
            )
        )
