"""Deployment plans, their operations, their history of moves and the SQL Prepare generated."""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.db import models

from deployments.models.catalog import Application, ApplicationVersion
from deployments.state import machine
from deployments.state.machine import PlanState
from environments.models import DeploymentZone, Environment


class DeploymentPlan(models.Model):
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="plans_from")
    target = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="plans_to")
    notes = models.TextField(blank=True)
    # Written only by deployments.state.moves.move_plan(); read through the questions below.
    state = models.CharField(max_length=30, choices=PlanState.choices, default=PlanState.SAVED, db_index=True)
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
    # When it joined its target's queue (first in, first out).
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["target", "state"], name="plan_target_state"),
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
        # How many plans hold a target, and which, is decided under a lock of the target's row
        # (deployments.state.moves.admit): several may, when the target allows it and they share no
        # application and no dependency.

    def __str__(self) -> str:
        return f"Deploy from {self.source.name} to {self.target.name}"

    # The questions people ask of a plan, answered by the state module (pages and templates ask here).
    @property
    def state_label(self) -> str:
        return machine.label(self.state)

    @property
    def tag(self) -> tuple[str, str]:
        return machine.tag(self.state)

    @property
    def is_saved(self) -> bool:
        return machine.is_saved(self.state)

    @property
    def is_prepared(self) -> bool:
        return machine.is_prepared(self.state)

    @property
    def is_scheduled(self) -> bool:
        return machine.is_scheduled(self.state)

    @property
    def is_suspended(self) -> bool:
        return machine.is_suspended(self.state)

    @property
    def is_running(self) -> bool:
        return machine.is_running(self.state)

    @property
    def is_queued(self) -> bool:
        return machine.is_queued(self.state)

    @property
    def is_waiting(self) -> bool:
        return machine.is_waiting(self.state)

    @property
    def is_aborted(self) -> bool:
        return machine.is_aborted(self.state)

    @property
    def is_final(self) -> bool:
        return machine.is_final(self.state)

    @property
    def holds_target(self) -> bool:
        return machine.holds_target(self.state)

    @property
    def may_abort(self) -> bool:
        return machine.may_abort(self.state)

    @property
    def may_continue(self) -> bool:
        return machine.may_continue(self.state)

    @property
    def may_prepare_again(self) -> bool:
        return machine.may_prepare_again(self.state)

    @property
    def may_retry(self) -> bool:
        return machine.may_retry(self.state)

    @property
    def past_point_of_no_return(self) -> bool:
        return machine.past_point_of_no_return(self.state)

    @property
    def may_roll_back(self) -> bool:
        return machine.may_roll_back(self.state)

    @property
    def is_rolling_back(self) -> bool:
        return machine.is_rolling_back(self.state)

    @property
    def is_rolled_back(self) -> bool:
        return machine.is_rolled_back(self.state)

    @property
    def prepared_since(self) -> dt.datetime | None:
        """When Prepare finished, while the plan waits for Continue (prepared or scheduled)."""
        return self.prepared_at if machine.is_prepared(self.state) else None

    @property
    def expires_at(self) -> dt.datetime | None:
        """When a waiting plan expires and frees its target (the target's time limit after Prepare)."""
        if self.prepared_at is None or not machine.is_waiting(self.state):
            return None
        return self.prepared_at + dt.timedelta(hours=self.target.prepared_plan_ttl_hours)

    @property
    def api_status(self) -> str:
        """LifeTime's DeploymentStatus."""
        return machine.api_status(self.state)[0]

    @property
    def api_info(self) -> str:
        """LifeTime's Info: set only with needs_user_intervention."""
        return machine.api_status(self.state)[1]


class OperationKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    UNDEPLOY = "undeploy", "Undeploy"


class PlanOperation(models.Model):
    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="operations")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ApplicationVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=OperationKind.choices, default=OperationKind.DEPLOY)
    # What ran in the target before this operation switched (written by Continue with the running
    # versions): what Roll Back switches back to. ``previous_known`` tells "nothing ran before"
    # (previous_version None) from "not switched, or switched before this was recorded".
    previous_version = models.ForeignKey(
        ApplicationVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    previous_known = models.BooleanField(default=False)
    # The digest of the settings document this operation put in place, and of the one before it
    # ("": none): Roll Back switches the settings back with the release.
    settings_sha = models.CharField(max_length=64, blank=True)
    previous_settings_sha = models.CharField(max_length=64, blank=True)
    # Roll Back of this operation: asked for (its stage switches it), then done.
    rollback_requested_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    # The target's zone whose front-ends get the application; None: every enabled front-end.
    zone = models.ForeignKey(DeploymentZone, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "application"], name="one_operation_per_application")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.application} {self.version.version if self.version else ''}".strip()


class Transition(models.Model):
    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=30, choices=PlanState.choices, blank=True)
    to_state = models.CharField(max_length=30, choices=PlanState.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state} -> {self.to_state} by {self.actor_name}"

    @property
    def from_label(self) -> str:
        return machine.label(self.from_state) if self.from_state else ""

    @property
    def to_label(self) -> str:
        return machine.label(self.to_state)


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
