"""Applications catalog, running versions, deployment plans, their stages, steps and logs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
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
    # (deployments.steps.script_analysis): pages and Prepare read it instead of parsing again.
    script_analysis = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["application__name", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["application", "version"], name="version_once_per_application")]

    def __str__(self) -> str:
        return f"{self.application.name} {self.version}"


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


class PlanStatus(models.TextChoices):
    SAVED = "saved", "Saved"
    RUNNING = "running", "Running"
    NEEDS_USER_INTERVENTION = "needs_user_intervention", "Needs intervention"
    ABORTING = "aborting", "Aborting"
    ABORTED = "aborted", "Aborted"
    FINISHED_SUCCESSFUL = "finished_successful", "Finished successful"
    FINISHED_WITH_WARNINGS = "finished_with_warnings", "Finished with warnings"
    FINISHED_WITH_ERRORS = "finished_with_errors", "Finished with errors"


class DeploymentPlan(models.Model):
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="plans_from")
    target = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="plans_to")
    notes = models.TextField(blank=True)
    # Written only by deployments.transitions.transition().
    status = models.CharField(max_length=30, choices=PlanStatus.choices, default=PlanStatus.SAVED, db_index=True)
    info = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    saved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prepared_at = models.DateTimeField(null=True, blank=True)
    continued_at = models.DateTimeField(null=True, blank=True)
    continued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    aborted_at = models.DateTimeField(null=True, blank=True)
    aborted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    # What Prepare saw of the target, to invalidate the plan if the target changes before Continue.
    prepared_snapshot = models.JSONField(default=dict, blank=True)
    point_of_no_return_at = models.DateTimeField(null=True, blank=True)
    # Continue at a set time (the window's start, say), by whoever scheduled it.
    continue_scheduled_at = models.DateTimeField(null=True, blank=True, db_index=True)
    continue_scheduled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    log_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["target", "status"]),
            # The plans list: newest first, whole or for one target, read a page at a time.
            models.Index(fields=["-created_at", "-id"], name="plan_newest_first"),
            models.Index(fields=["target", "-created_at", "-id"], name="plan_target_newest_first"),
            # The board: the last finished plan of each environment, one index probe per environment.
            models.Index(
                fields=["target", "-finished_at"],
                name="plan_target_last_finished",
                condition=models.Q(finished_at__isnull=False),
            ),
        ]
        constraints = [
            # One running or prepared plan per target: the database enforces what the services check.
            models.UniqueConstraint(
                fields=["target"],
                condition=models.Q(status__in=["running", "needs_user_intervention", "aborting"]),
                name="one_holding_plan_per_target",
            )
        ]

    def __str__(self) -> str:
        return f"Deploy from {self.source.name} to {self.target.name}"


class OperationKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    UNDEPLOY = "undeploy", "Undeploy"


class PlanOperation(models.Model):
    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="operations")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ApplicationVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=OperationKind.choices, default=OperationKind.DEPLOY)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "application"], name="one_operation_per_application")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.application} {self.version.version if self.version else ''}".strip()


class StageKind(models.TextChoices):
    PREPARE = "prepare", "Prepare"
    CONTINUE = "continue", "Continue"


class StageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    CANCELLED = "cancelled", "Cancelled"


class Stage(models.Model):
    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="stages")
    kind = models.CharField(max_length=10, choices=StageKind.choices)
    status = models.CharField(max_length=10, choices=StageStatus.choices, default=StageStatus.QUEUED)
    attempt = models.PositiveIntegerField(default=1)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    explanation = models.TextField(blank=True, help_text="For people: what happened and what to do.")
    traceback = models.TextField(blank=True, help_text="For developers.")

    class Meta:
        ordering = ["queued_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.plan_id} (attempt {self.attempt}): {self.status}"


class StepKind(models.TextChoices):
    VALIDATE = "validate", "Validate"
    COMPILE = "compile", "Compile"
    GENERATE_SQL = "generate_sql", "Generate SQL"
    UPLOAD = "upload", "Upload"
    CHECK = "check", "Check plan is still valid"
    EXECUTE_SQL = "execute_sql", "Execute SQL"
    SWITCH = "switch", "Switch"
    MOBILE_PACKAGE = "mobile_package", "Mobile package"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class Step(models.Model):
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="steps")
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    subject = models.CharField(max_length=120, blank=True, help_text="Application or front-end name.")
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
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


class Transition(models.Model):
    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=30)
    to_status = models.CharField(max_length=30)
    info = models.CharField(max_length=60, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status} by {self.actor_name}"


class GeneratedSql(models.Model):
    """The SQL Prepare generated for one application of a plan, and what it was generated against."""

    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="generated_sql")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ApplicationVersion, on_delete=models.PROTECT, related_name="+")
    statements = models.JSONField(default=list, help_text="[{sql, kind, source, flags}] in execution order")
    warnings = models.JSONField(default=list)
    schema_fingerprint = models.CharField(max_length=64)
    # The canonical description the fingerprint was computed from: shows what drifted at Continue.
    schema_snapshot = models.JSONField(default=dict, blank=True)
    rehearsal_seconds = models.FloatField(null=True, blank=True)
    # The Continue estimate of these statements from the target's table sizes (steps/sql_estimate.py):
    # totals, what the throughputs came from, the sizes read.
    estimate = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "application"], name="generated_sql_once")]

    def __str__(self) -> str:
        return f"SQL for {self.application} in plan {self.plan_id}"


class NotificationEvent(models.TextChoices):
    PREPARED = "prepared", "Prepared"
    FINISHED_SUCCESSFUL = "finished_successful", "Finished successful"
    FINISHED_WITH_WARNINGS = "finished_with_warnings", "Finished with warnings"
    FINISHED_WITH_ERRORS = "finished_with_errors", "Finished with errors"
    FAILED = "failed", "Failed (needs intervention)"
    ABORTED = "aborted", "Aborted"
    EXPIRING = "expiring", "Prepared plan about to expire"


class NotificationKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class NotificationRule(models.Model):
    """Who hears about which plan events on one environment: an email address list or a webhook URL."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="notification_rules")
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    target = models.CharField(max_length=500, help_text="Email addresses (comma separated) or the webhook URL.")
    events = ArrayField(models.CharField(max_length=30, choices=NotificationEvent.choices), default=list)
    # The webhook's HMAC key, encrypted at rest (lifetime.encryption); never shown again once saved.
    secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["kind", "target", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.target} on {self.environment.name}"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class NotificationDelivery(models.Model):
    """One notification of one plan event to one rule's target, and how sending it went."""

    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="deliveries")
    plan = models.ForeignKey(DeploymentPlan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=30, choices=NotificationEvent.choices)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The beat task warns about an expiring prepared plan once, however often it runs.
            models.UniqueConstraint(
                fields=["rule", "plan", "event"], condition=models.Q(event="expiring"), name="expiry_warned_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} of plan {self.plan_id} to {self.rule.target}: {self.status}"


class PreparedIndex(models.Model):
    """An index Prepare built ahead of the window with CREATE INDEX CONCURRENTLY, under a name the
    console owns; Continue renames it to the data model's name, Abort/expiry/Prepare Again drop it."""

    class State(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        USED = "used", "Renamed by Continue"
        DROPPED = "dropped", "Dropped"
        FAILED = "failed", "Failed"

    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="prepared_indexes")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    schema = models.CharField(max_length=63)
    table = models.CharField(max_length=63)
    name = models.CharField(max_length=63, help_text="The console's name while it waits for Continue.")
    final_name = models.CharField(max_length=63, help_text="The name the plan's SQL gives it.")
    statement = models.TextField(help_text="The CREATE INDEX statement of the plan it stands for.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.BUILDING)
    seconds = models.FloatField(null=True, blank=True)
    bytes = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["name"], name="prepared_index_name_once")]

    def __str__(self) -> str:
        return f"{self.name} for {self.schema}.{self.final_name} ({self.state})"


class SqlTiming(models.Model):
    """How fast one kind of work went on one target (or on the rehearsal server, environment null):
    the throughput the Continue estimate is calibrated from."""

    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="sql_timings"
    )
    cost = models.CharField(max_length=20)  # steps.sql_parse kinds of cost
    bytes = models.BigIntegerField()
    seconds = models.FloatField()
    source = models.CharField(max_length=20, default="continue")  # continue, prepare, rehearsal
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["environment", "cost", "-at"], name="sql_timing_lookup")]

    def __str__(self) -> str:
        return f"{self.cost}: {self.bytes} bytes in {self.seconds:.3f} s"
