"""The applications catalog: applications, their immutable versions, and what runs where."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from environments.models import Environment


class ApplicationKind(models.TextChoices):
    WEB = "web", "Web"
    MOBILE = "mobile", "Mobile"


class Application(models.Model):
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=ApplicationKind.choices, default=ApplicationKind.WEB)
    description = models.TextField(blank=True)
    team = models.CharField(max_length=100, blank=True)
    url_path = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApplicationVersion(models.Model):
    """An immutable tagged version of an application: a bundle stored content-addressed."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=50)
    change_log = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    bundle_sha256 = models.CharField(max_length=64)
    bundle_size = models.BigIntegerField(default=0)
    manifest = models.JSONField(default=dict)
    native_hash = models.CharField(max_length=64, blank=True, help_text="Digest of the mobile native shell.")
    # Filled by the compile step: the deterministic binary archive, content-addressed.
    binary_sha256 = models.CharField(max_length=64, blank=True)
    binary_size = models.BigIntegerField(default=0)
    compiled_at = models.DateTimeField(null=True, blank=True)
    compile_seconds = models.FloatField(null=True, blank=True)
    # The hand-written scripts split and classified by PostgreSQL's parser at registration
    # (deployments.statements.script_analysis): pages and Prepare read it instead of parsing again.
    script_analysis = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["application__name", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["application", "version"], name="version_once_per_application")]

    def __str__(self) -> str:
        return f"{self.application.name} {self.version}"

    @property
    def dependencies(self) -> list[tuple[str, str]]:
        """``[(application name, PEP 440 specifier)]`` from the manifest."""
        deps = (self.manifest or {}).get("dependencies") or []
        if isinstance(deps, dict):
            return [(name, str(spec or "")) for name, spec in deps.items()]
        return [
            (str(dep.get("application") or dep.get("name")), str(dep.get("version") or ""))
            for dep in deps
            if isinstance(dep, dict)
        ]


class RunningVersion(models.Model):
    """Which version of which application runs in which environment. Only a finished Continue writes it."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="running_versions")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="running_versions")
    version = models.ForeignKey(ApplicationVersion, on_delete=models.PROTECT, related_name="+")
    since = models.DateTimeField()
    plan = models.ForeignKey("DeploymentPlan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_modified = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "application"], name="one_running_version_per_environment")
        ]

    def __str__(self) -> str:
        return f"{self.application.name} {self.version.version} on {self.environment.name}"
