"""Infrastructure: environments, their front-ends, deployment windows, who may do what.

Nothing here knows about deployments (imports point deployments -> environments -> lifetime).
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from core import encryption


class EnvironmentKind(models.TextChoices):
    DEVELOPMENT = "Development"
    TEST = "Test"
    PRODUCTION = "Production"


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


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

    @property
    def has_window(self) -> bool:
        return bool(self.window_days) and self.window_start is not None and bool(self.window_minutes)

    def window_label(self) -> str:
        if not self.has_window:
            return "No window"
        days = "every day" if len(self.window_days) == 7 else ", ".join(WEEKDAYS[d] for d in sorted(self.window_days))
        start = self.window_start
        end = (dt.datetime.combine(dt.date(2000, 1, 1), start) + dt.timedelta(minutes=self.window_minutes)).time()
        return f"{start:%H:%M}–{end:%H:%M} {self.window_timezone}, {days}"

    def window_open(self, moment: dt.datetime | None = None) -> bool:
        moment = moment or timezone.now()
        window = self.window_at(moment)
        return window is not None and window[0] <= moment < window[1]

    def window_at(self, moment: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime] | None:
        """The window open at ``moment``, else the next one: (start, end), aware datetimes."""
        if not self.has_window:
            return None
        moment = moment or timezone.now()
        tz = zoneinfo.ZoneInfo(self.window_timezone)
        local = moment.astimezone(tz)
        length = dt.timedelta(minutes=self.window_minutes or 0)
        for offset in range(-1, 8):
            day = local.date() + dt.timedelta(days=offset)
            if day.weekday() not in self.window_days:
                continue
            start = dt.datetime.combine(day, self.window_start, tzinfo=tz)
            if start + length > moment:
                return start, start + length
        return None


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


class AccessLevel(models.IntegerChoices):
    NONE = 0, "None"
    VIEW = 1, "View"
    DEPLOY = 2, "Deploy"
    MANAGE = 3, "Manage"


class EnvironmentAccess(models.Model):
    """A user's role on one environment, as in LifeTime: none / view / deploy / manage."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="environment_access")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="access")
    level = models.PositiveSmallIntegerField(choices=AccessLevel.choices, default=AccessLevel.VIEW)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "environment"], name="one_role_per_environment")]

    def __str__(self) -> str:
        return f"{self.user} {self.get_level_display()} on {self.environment}"
