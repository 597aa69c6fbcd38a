"""The stages of a plan (Prepare, Continue), their steps and the plan's log."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployments.models.plans import DeploymentPlan
from deployments.state import machine
from deployments.state.machine import StageState, StepState


class StageKind(models.TextChoices):
    PREPARE = "prepare", "Prepare"
    CONTINUE = "continue", "Continue"
    ROLLBACK = "rollback", "Roll Back"


class Stage(models.Model):
    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="stages")
    kind = models.CharField(max_length=10, choices=StageKind.choices)
    # Written only by deployments.state.moves (claim, finish, cancel, lose).
    status = models.CharField(max_length=10, choices=StageState.choices, default=StageState.QUEUED)
    attempt = models.PositiveIntegerField(default=1)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The database backend whose session holds the attempt's lease (deployments.stages.lease).
    lease_pid = models.PositiveIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    explanation = models.TextField(blank=True, help_text="For people: what happened and what to do.")
    traceback = models.TextField(blank=True, help_text="For developers.")

    class Meta:
        ordering = ["queued_at", "id"]
        constraints = [
            # Two attempts of a plan's stages never run at once, whatever a worker believes.
            models.UniqueConstraint(
                fields=["plan"], condition=models.Q(status=StageState.RUNNING), name="one_running_stage_per_plan"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.plan_id} (attempt {self.attempt}): {self.status}"

    @property
    def css(self) -> str:
        return machine.stage_css(self.status)

    @property
    def is_active(self) -> bool:
        return machine.stage_is_active(self.status)


class StepKind(models.TextChoices):
    VALIDATE = "validate", "Validate"
    COMPILE = "compile", "Compile"
    GENERATE_SQL = "generate_sql", "Generate SQL"
    UPLOAD = "upload", "Upload"
    CHECK = "check", "Check plan is still valid"
    SETTINGS = "settings", "Put settings in place"
    EXECUTE_SQL = "execute_sql", "Execute SQL"
    SWITCH = "switch", "Switch"
    MOBILE_PACKAGE = "mobile_package", "Mobile package"


class Step(models.Model):
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="steps")
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    subject = models.CharField(max_length=120, blank=True, help_text="Application or front-end name.")
    status = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.subject}: {self.status}"


class LogLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class LogLine(models.Model):
    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["plan", "seq"], name="log_seq_per_plan")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.level}: {self.message[:60]}"
