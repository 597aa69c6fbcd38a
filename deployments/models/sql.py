"""What the console keeps of the SQL of the window: indexes Prepare built ahead of it, and how fast
each kind of work went on each target (what the Continue estimate is calibrated from)."""

from __future__ import annotations

from django.db import models

from deployments.models.catalog import Application
from deployments.models.plans import DeploymentPlan
from environments.models import Environment


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
    cost = models.CharField(max_length=20)  # statements.parse kinds of cost
    bytes = models.BigIntegerField()
    seconds = models.FloatField()
    source = models.CharField(max_length=20, default="continue")  # continue, prepare, rehearsal
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["environment", "cost", "-at"], name="sql_timing_lookup")]

    def __str__(self) -> str:
        return f"{self.cost}: {self.bytes} bytes in {self.seconds:.3f} s"
