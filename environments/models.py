"""Infrastructure: environments, their front-ends, deployment windows, who may do what.

Nothing here knows about deployments (imports point deployments -> environments -> lifetime).
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from core import encryption
from environments import windows


class EnvironmentKind(models.TextChoices):
    DEVELOPMENT = "Development"
    TEST = "Test"
    PRODUCTION = "Production"


class AccessLevel(models.IntegerChoices):
    NONE = 0, "None"
    VIEW = 1, "View"
    DEPLOY = 2, "Deploy"
    MANAGE = 3, "Manage"


class Environment(models.Model):
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=80, unique=True)
    order = models.PositiveIntegerField(unique=True, help_text="Position in the promotion path (1 first).")
    kind = models.CharField(max_length=20, choices=EnvironmentKind.choices, default=EnvironmentKind.DEVELOPMENT)
    hostname = models.CharField(max_length=200, blank=True)
    use_https = models.BooleanField(default=False)
    two_stage_deployments = models.BooleanField(
        "Execute deployments in two stages",
        default=False,
        help_text="Prepare (compile, generate SQL, upload) runs ahead; Continue runs in the window.",
    )
    # Deployment window: days of the week (0 = Monday), a start time and a duration, in a time zone.
    window_days = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    window_start = models.TimeField(null=True, blank=True)
    window_minutes = models.PositiveIntegerField(null=True, blank=True)
    window_timezone = models.CharField(max_length=64, default="UTC")
    enforce_window = models.BooleanField(
        "Refuse Continue outside the window",
        default=False,
        help_text="Continue outside the deployment window then needs a reason, kept in the audit trail.",
    )
    # Release governance: people between Prepare and Continue (deployments.plans.approvals).
    approvals_required = models.PositiveSmallIntegerField(
        "Approvals needed before Continue",
        default=0,
        help_text="A prepared plan needs this many approvals, from people other than whoever prepared or "
        "scheduled it, before Continue runs. 0: none.",
    )
    approver_level = models.PositiveSmallIntegerField(
        "Who may approve",
        choices=[(AccessLevel.DEPLOY.value, "Deploy"), (AccessLevel.MANAGE.value, "Manage")],
        default=AccessLevel.DEPLOY.value,
        help_text="The right on this environment an approver needs.",
    )
    only_versions_running_in_source = models.BooleanField(
        "Deploy only versions that run in the source",
        default=False,
        help_text="A plan from another environment deploys here only the versions that run there (LifeTime's "
        "meaning of deploying from Test to Production); a user with the manage right here may override it, "
        "with a reason. Versions enter the path at its first environment, from the catalog.",
    )
    prepared_plan_ttl_hours = models.PositiveIntegerField(
        default=96, help_text="A prepared plan not continued within this time expires and frees the environment."
    )
    # Application database connection: a secret (encrypted at rest, write-only in the UI).
    app_db_dsn_encrypted = models.TextField(blank=True, editable=False)
    app_db_summary = models.CharField(
        max_length=200, blank=True, editable=False, help_text="host:port/database, without credentials"
    )
    # Which database the connection reaches, as its server says (system identifier / database OID):
    # two environments never share one (environments.databases).
    app_db_identity = models.CharField(max_length=80, blank=True, editable=False)
    sql_lock_timeout_ms = models.PositiveIntegerField(default=5000)
    sql_statement_timeout_ms = models.PositiveIntegerField(default=300000)
    build_indexes_during_prepare = models.BooleanField(
        "Build new indexes during Prepare",
        default=False,
        help_text="New non-unique indexes on existing tables are built at Prepare with CREATE INDEX "
        "CONCURRENTLY, and Continue only renames them. Reads and writes go on meanwhile; this adds load "
        "on the database server during Prepare, never a change of behaviour: the running version does "
        "not depend on them. Foreign keys and checks are then added NOT VALID in the window and "
        "validated after it.",
    )
    concurrent_plans = models.PositiveSmallIntegerField(
        "Plans at once",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="How many plans may hold this environment at once (1 to 5). Plans run side by side only "
        "when they share no application and no dependency.",
    )
    queue_plans = models.BooleanField(
        "Queue plans started while it is held",
        default=False,
        help_text="A plan started while this environment is held waits in a first-in first-out queue and "
        "starts when it is free, instead of being refused.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_app_db(self) -> bool:
        return bool(self.app_db_dsn_encrypted)

    def app_db_dsn(self) -> str:
        """The decrypted connection string. Never log it, never put it in a Celery message."""
        if not self.app_db_dsn_encrypted:
            return ""
        return encryption.decrypt(self.app_db_dsn_encrypted)

    # The deployment windows: the one of the fields above (the first), plus any further windows
    # (DeploymentWindow rows). Read through the methods below (environments.windows computes).
    def weekly_windows(self) -> list[windows.WeeklyWindow]:
        out = []
        if self.window_days and self.window_start is not None and self.window_minutes:
            out.append(
                windows.WeeklyWindow(
                    tuple(self.window_days), self.window_start, self.window_minutes, self.window_timezone
                )
            )
        if self.pk:
            out += [w.as_weekly() for w in self.windows.all()]
        return out

    @property
    def has_window(self) -> bool:
        return bool(self.weekly_windows())

    def window_label(self) -> str:
        weekly = self.weekly_windows()
        if not weekly:
            return "No window"
        return "; ".join(w.label() for w in weekly)

    def window_open(self, moment: dt.datetime | None = None) -> bool:
        moment = moment or timezone.now()
        window = self.window_at(moment)
        return window is not None and window[0] <= moment < window[1]

    def window_at(self, moment: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime] | None:
        """The window open at ``moment``, else the next one: (start, end), aware datetimes."""
        return windows.window_at(self.weekly_windows(), moment or timezone.now())

    def freeze_rules(self) -> list[windows.FreezeRule]:
        return [f.as_rule() for f in self.freezes.all()] if self.pk else []

    def freeze_at(self, moment: dt.datetime | None = None) -> windows.FreezePeriod | None:
        """The freeze in force at ``moment``, else the next one."""
        return windows.freeze_at(self.freeze_rules(), moment or timezone.now())

    def frozen_at(self, moment: dt.datetime | None = None) -> windows.FreezePeriod | None:
        """The freeze in force at ``moment``, if any."""
        return windows.frozen_at(self.freeze_rules(), moment or timezone.now())

    def next_window_outside_freezes(self, moment: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime] | None:
        return windows.next_window_outside_freezes(self.weekly_windows(), self.freeze_rules(), moment or timezone.now())


class DeploymentWindow(models.Model):
    """A further weekly window of an environment (the first one is on the environment itself)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="windows")
    days = ArrayField(models.PositiveSmallIntegerField())
    start = models.TimeField()
    minutes = models.PositiveIntegerField()
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start", "id"]

    def __str__(self) -> str:
        return self.as_weekly().label()

    def as_weekly(self) -> windows.WeeklyWindow:
        return windows.WeeklyWindow(tuple(self.days), self.start, self.minutes, self.timezone)


class Freeze(models.Model):
    """A period when no deployment changes the environment: a one-off range (``starts_at`` to
    ``ends_at``), or every month the ``week``-th ``weekday`` (-1: the last), the whole local day."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freezes")
    reason = models.CharField(max_length=300)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    weekday = models.PositiveSmallIntegerField(null=True, blank=True)
    week = models.SmallIntegerField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["starts_at", "week", "weekday", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(starts_at__isnull=False, ends_at__isnull=False, weekday__isnull=True, week__isnull=True)
                    | models.Q(starts_at__isnull=True, ends_at__isnull=True, weekday__isnull=False, week__isnull=False)
                ),
                name="freeze_one_off_or_monthly",
            )
        ]

    def __str__(self) -> str:
        return f"{self.as_rule().label()}: {self.reason}"

    def as_rule(self) -> windows.FreezeRule:
        return windows.FreezeRule(
            reason=self.reason,
            timezone=self.timezone,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            weekday=self.weekday,
            week=self.week,
        )

    def label(self) -> str:
        return self.as_rule().label()


class FrontEnd(models.Model):
    """A front-end server of an environment, served by its own agent on its own queue."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="frontends")
    name = models.CharField(max_length=80)
    queue = models.CharField(
        max_length=120, unique=True, help_text="Celery queue its agent consumes (frontend.<environment>.<name>)."
    )
    releases_root = models.CharField(max_length=500, help_text="Folder holding releases/ and current links.")
    base_url = models.URLField(blank=True, help_text="Where the front-end server answers HTTP.")
    health_url = models.URLField(blank=True, help_text="Checked after every switch, if set.")
    enabled = models.BooleanField(default=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_report = models.JSONField(default=dict, blank=True)
    # Where this front-end's links point where they differ from the console's running versions:
    # [{"application", "recorded", "actual"}] (release folders; None for no link). Written by the
    # reconciliation of the agents' reports (deployments.stages.drift).
    drift = models.JSONField(default=list, blank=True)
    drift_since = models.DateTimeField(null=True, blank=True)
    # The key the console signs this front-end's agent tasks with (agent.signing): a secret,
    # encrypted at rest, shown once when it is generated.
    agent_key_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__order", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="frontend_name_per_environment")]

    def __str__(self) -> str:
        return f"{self.environment.name}/{self.name}"

    @property
    def has_agent_key(self) -> bool:
        return bool(self.agent_key_encrypted)

    def agent_key(self) -> str:
        """The decrypted agent key. Never log it, never put it in a page after the one that shows it once."""
        if not self.agent_key_encrypted:
            return ""
        return encryption.decrypt(self.agent_key_encrypted)

    def refusals(self) -> list[dict]:
        """What its agent refused lately (unsigned, forged, replayed, misdirected messages), newest first."""
        return list(reversed((self.last_report or {}).get("refused") or []))


class DeploymentZone(models.Model):
    """A named group of an environment's front-ends (LifeTime's deployment zone): an application
    deployed to a zone is uploaded to and switched on that zone's front-ends only. Without a zone, an
    application goes to every enabled front-end (the environment's default zone, "Global")."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="zones")
    name = models.CharField(max_length=80)
    frontends = models.ManyToManyField(FrontEnd, related_name="zones", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__order", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="zone_name_per_environment")]

    def __str__(self) -> str:
        return f"{self.environment.name}/{self.name}"


class EnvironmentAccess(models.Model):
    """A user's role on one environment, as in LifeTime: none / view / deploy / manage."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="environment_access")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="access")
    level = models.PositiveSmallIntegerField(choices=AccessLevel.choices, default=AccessLevel.VIEW)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "environment"], name="one_role_per_environment")]

    def __str__(self) -> str:
        return f"{self.user} {self.get_level_display()} on {self.environment}"
