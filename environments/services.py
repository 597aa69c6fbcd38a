"""The only code that changes environments, front-ends and roles. Each change is audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo
from typing import Any

import psycopg2
from django.db import connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone as dj_timezone
from django.utils.text import slugify
from psycopg2.extensions import parse_dsn

from agent import signing
from core import audit, encryption, outbound
from core.actors import Actor
from core.refusals import Refusal
from environments import access, databases, folders
from environments.models import (
    AccessLevel,
    DeploymentWindow,
    DeploymentZone,
    Environment,
    EnvironmentAccess,
    Freeze,
    FrontEnd,
)

ENVIRONMENT_FIELDS = (
    "name",
    "order",
    "kind",
    "hostname",
    "use_https",
    "two_stage_deployments",
    "window_days",
    "window_start",
    "window_minutes",
    "window_timezone",
    "enforce_window",
    "approvals_required",
    "approver_level",
    "only_versions_running_in_source",
    "prepared_plan_ttl_hours",
    "sql_lock_timeout_ms",
    "sql_statement_timeout_ms",
    "build_indexes_during_prepare",
    "concurrent_plans",
    "queue_plans",
)
# The zone every environment has: all its enabled front-ends (LifeTime's "Global").
DEFAULT_ZONE_NAME = "Global"
FRONTEND_FIELDS = ("name", "queue", "releases_root", "base_url", "health_url", "enabled")


class InvalidInput(Refusal):
    """A change refused for a reason the user can fix; ``field`` names the form field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# --- application database connection -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


def parse_connection(dsn: str) -> dict[str, str]:
    """Parse a libpq connection string or ``postgres://`` URL; raise InvalidInput when malformed."""
    dsn = dsn.strip()
    if not dsn:
        raise InvalidInput("Enter a connection string.", field="app_db_dsn")
    if "://" in dsn and not re.match(r"^postgres(ql)?://", dsn):
        raise InvalidInput("Use a postgres:// URL or libpq key=value pairs.", field="app_db_dsn")
    try:
        params = parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        raise InvalidInput(f"Malformed connection string: {_first_line(exc)}", field="app_db_dsn") from None
    if not params.get("dbname"):
        raise InvalidInput("The connection string must name a database.", field="app_db_dsn")
    return params


def connection_summary(params: dict[str, str]) -> str:
    host = params.get("host") or "local socket"
    port = params.get("port") or "5432"
    user = params.get("user")
    who = f"{user}@" if user else ""
    return f"{who}{host}:{port}/{params.get('dbname')}"


def check_connection(
    dsn: str, *, environment: Environment | None = None, timeout_s: int = databases.CONNECT_TIMEOUT_S
) -> ConnectionCheck:
    """Really connect and ask the server who it is; say what failed without echoing the secret, and
    whether the connection could be saved for ``environment`` (environments.databases)."""
    try:
        params = parse_connection(dsn)
        view = databases.inspect(dsn, summary=connection_summary(params), timeout_s=timeout_s)
        databases.refuse_shared(view, others=Environment.objects.exclude(pk=getattr(environment, "pk", None)))
    except InvalidInput as exc:
        return ConnectionCheck(False, exc.message)
    except databases.ConnectionRefused as exc:
        return ConnectionCheck(False, exc.message)
    if view.privileges:
        return ConnectionCheck(False, databases.privileged_message(view))
    return ConnectionCheck(True, f"Connected to {view.database} on PostgreSQL {view.version} as {view.role}.")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else exc.__class__.__name__
    # libpq may quote the connection string back; never let a password through.
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", message, flags=re.I)


# --- environments -----------------------------------------------------------------------


def _snapshot(environment: Environment) -> dict[str, Any]:
    data = {name: getattr(environment, name) for name in ENVIRONMENT_FIELDS}
    data["app_db"] = environment.app_db_dsn_encrypted
    return data


def _validate_window(data: dict[str, Any]) -> None:
    days, start, minutes = data.get("window_days") or [], data.get("window_start"), data.get("window_minutes")
    given = [bool(days), start is not None, bool(minutes)]
    if any(given) and not all(given):
        raise InvalidInput("A deployment window needs days, a start time and a duration.", field="window_start")
    if minutes is not None and minutes and not 1 <= minutes <= 24 * 60:
        raise InvalidInput("The window must last between 1 minute and 24 hours.", field="window_minutes")
    if any(d not in range(7) for d in days):
        raise InvalidInput("Unknown day of the week.", field="window_days")


def _validate_approvals(data: dict[str, Any], environment: Environment | None) -> None:
    def value(name: str) -> Any:
        return data[name] if name in data else getattr(environment, name, None)

    needed = value("approvals_required") or 0
    if needed and not value("two_stage_deployments"):
        # Deploy Now runs Continue right after Prepare: there is no moment to approve in.
        raise InvalidInput("Approvals before Continue need deployments in two stages.", field="approvals_required")
    if not 0 <= needed <= 10:
        raise InvalidInput("Between 0 and 10 approvals.", field="approvals_required")
    if value("approver_level") not in (None, AccessLevel.DEPLOY, AccessLevel.MANAGE):
        raise InvalidInput("Approvers need the deploy or the manage right.", field="approver_level")


def _inspect_connection(dsn: str, params: dict[str, str]) -> databases.ServerView:
    try:
        return databases.inspect(dsn, summary=connection_summary(params))
    except databases.ConnectionRefused as exc:
        raise InvalidInput(exc.message, field="app_db_dsn") from None


def save_environment(
    *,
    actor: Actor,
    data: dict[str, Any],
    environment: Environment | None = None,
    app_db_dsn: str | None = None,
    confirm_privileged_role: bool = False,
) -> Environment:
    """Create or update an environment. ``app_db_dsn`` None keeps the stored connection, "" clears it.

    A new connection must reach a database of this environment's own (environments.databases); a
    role with more rights than a deployment needs is accepted only when an infra admin confirms it.
    """
    _validate_window(data)
    _validate_approvals(data, environment)
    view = None
    if app_db_dsn:
        params = parse_connection(app_db_dsn)
        view = _inspect_connection(app_db_dsn, params)
        if view.privileges and not (confirm_privileged_role and access.is_infra_admin(actor.user)):
            raise InvalidInput(databases.privileged_message(view), field="app_db_dsn")
    creating = environment is None
    with transaction.atomic():
        if view is not None:
            # Two managers saving the same database for two environments at once: one waits.
            with connection.cursor() as cur:
                cur.execute("select pg_advisory_xact_lock(hashtext('lifetime.environment.app_db'))")
            try:
                databases.refuse_shared(view, others=Environment.objects.exclude(pk=getattr(environment, "pk", None)))
            except databases.ConnectionRefused as exc:
                raise InvalidInput(exc.message, field="app_db_dsn") from None
        if creating:
            environment = Environment()
            before: dict[str, Any] = {}
        else:
            environment = Environment.objects.select_for_update().get(pk=environment.pk)
            before = _snapshot(environment)
        if Environment.objects.exclude(pk=environment.pk).filter(name__iexact=data["name"]).exists():
            raise InvalidInput(f"An environment named {data['name']!r} already exists.", field="name")
        if Environment.objects.exclude(pk=environment.pk).filter(order=data["order"]).exists():
            raise InvalidInput(f"Another environment is already at position {data['order']}.", field="order")
        for name in ENVIRONMENT_FIELDS:
            if name in data:
                setattr(environment, name, data[name])
        environment.window_days = sorted(set(environment.window_days or []))
        if app_db_dsn is not None:
            if app_db_dsn and view is not None:
                environment.app_db_dsn_encrypted = encryption.encrypt(app_db_dsn.strip())
                environment.app_db_summary = connection_summary(params)
                environment.app_db_identity = view.identity
            else:
                environment.app_db_dsn_encrypted = ""
                environment.app_db_summary = ""
                environment.app_db_identity = ""
        environment.save()
        changes = audit.diff(before, _snapshot(environment), secret_fields=frozenset({"app_db"}))
        audit.record(
            actor=actor,
            action="environment.created" if creating else "environment.changed",
            object_type="environment",
            object_key=environment.key,
            object_label=environment.name,
            environment_key=environment.key,
            changes=changes,
        )
        if view is not None and view.privileges:
            audit.record(
                actor=actor,
                action="environment.privileged_role_confirmed",
                object_type="environment",
                object_key=environment.key,
                object_label=environment.name,
                environment_key=environment.key,
                message=f"Accepted the role {view.role} for the application database: {'; '.join(view.privileges)}.",
            )
    return environment


# --- front-ends -------------------------------------------------------------------------


def default_queue(environment: Environment, name: str) -> str:
    return f"frontend.{slugify(environment.name)}.{slugify(name)}"


def _check_health_url(data: dict[str, Any]) -> None:
    """A health URL is on the front-end's own host, and not somewhere the console must not call."""
    health_url = (data.get("health_url") or "").strip()
    if not health_url:
        return
    if not data.get("base_url"):
        raise InvalidInput(
            "Give the front-end's URL first: its health URL must be on the same host.", field="health_url"
        )
    if not outbound.same_host(health_url, data["base_url"]):
        raise InvalidInput(
            "The health URL must be on the front-end's own host (the host of its URL).", field="health_url"
        )
    try:
        outbound.check_url(health_url, what="The health URL")
    except outbound.OutboundRefused as exc:
        raise InvalidInput(exc.message, field="health_url") from None


def save_frontend(
    *, actor: Actor, environment: Environment, data: dict[str, Any], frontend: FrontEnd | None = None
) -> FrontEnd:
    """Create or change a front-end. A new front-end gets its agent key (agent.signing), kept
    encrypted: the creating page shows it once (``FrontEnd.agent_key()``)."""
    creating = frontend is None
    data = dict(data)
    data["queue"] = (data.get("queue") or "").strip() or default_queue(environment, data["name"])
    try:
        folders.check_queue(data["queue"], environment_name=environment.name)
    except folders.FolderRefused as exc:
        raise InvalidInput(exc.message, field="queue") from None
    _check_health_url(data)
    with transaction.atomic():
        # Folders are compared with every other front-end's: one check at a time.
        with connection.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext('lifetime.frontend.folder'))")
        others = FrontEnd.objects.exclude(pk=getattr(frontend, "pk", None))
        try:
            data["releases_root"] = folders.check_folder(
                data.get("releases_root") or "", others=others.values_list("releases_root", flat=True)
            )
        except folders.FolderRefused as exc:
            raise InvalidInput(exc.message, field="releases_root") from None
        if others.filter(environment=environment, name__iexact=data["name"]).exists():
            raise InvalidInput(f"{environment.name} already has a front-end named {data['name']!r}.", field="name")
        if others.filter(queue=data["queue"]).exists():
            raise InvalidInput(f"The queue {data['queue']!r} is used by another front-end.", field="queue")
        before = {} if creating else {n: getattr(frontend, n) for n in FRONTEND_FIELDS}
        if creating:
            frontend = FrontEnd(environment=environment, agent_key_encrypted=encryption.encrypt(signing.new_key()))
        for name in FRONTEND_FIELDS:
            if name in data:
                setattr(frontend, name, data[name])
        frontend.save()
        audit.record(
            actor=actor,
            action="frontend.created" if creating else "frontend.changed",
            object_type="frontend",
            object_key=frontend.key,
            object_label=str(frontend),
            environment_key=environment.key,
            changes={
                **audit.diff(before, {n: getattr(frontend, n) for n in FRONTEND_FIELDS}),
                **({"agent_key": audit.SECRET_MARK} if creating else {}),
            },
        )
    return frontend


def new_agent_key(*, actor: Actor, frontend: FrontEnd) -> str:
    """Replace a front-end's agent key and return the new one (to show once). From now on its agent
    refuses everything until it is given the new key."""
    key = signing.new_key()
    with transaction.atomic():
        FrontEnd.objects.filter(pk=frontend.pk).update(agent_key_encrypted=encryption.encrypt(key))
        audit.record(
            actor=actor,
            action="frontend.agent_key_generated",
            object_type="frontend",
            object_key=frontend.key,
            object_label=str(frontend),
            environment_key=frontend.environment.key,
            changes={"agent_key": audit.SECRET_MARK},
        )
    frontend.refresh_from_db()
    return key


def set_frontend_enabled(*, actor: Actor, frontend: FrontEnd, enabled: bool) -> FrontEnd:
    with transaction.atomic():
        changed = FrontEnd.objects.filter(pk=frontend.pk).exclude(enabled=enabled).update(enabled=enabled)
        frontend.refresh_from_db()
        if changed:
            audit.record(
                actor=actor,
                action="frontend.enabled" if enabled else "frontend.disabled",
                object_type="frontend",
                object_key=frontend.key,
                object_label=str(frontend),
                environment_key=frontend.environment.key,
            )
    return frontend


# --- roles ------------------------------------------------------------------------------


def set_access(*, actor: Actor, user: Any, environment: Environment, level: int) -> None:
    with transaction.atomic():
        current = EnvironmentAccess.objects.filter(user=user, environment=environment).first()
        old = current.level if current else AccessLevel.NONE
        if level == AccessLevel.NONE:
            EnvironmentAccess.objects.filter(user=user, environment=environment).delete()
        else:
            EnvironmentAccess.objects.update_or_create(user=user, environment=environment, defaults={"level": level})
        if old != level:
            audit.record(
                actor=actor,
                action="access.changed",
                object_type="user",
                object_key=user.pk,
                object_label=user.username,
                environment_key=environment.key,
                changes={"level": [AccessLevel(old).label, AccessLevel(level).label]},
            )


# --- further windows and freezes ----------------------------------------------------------------


def _check_timezone(name: str, field: str) -> str:
    name = (name or "UTC").strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Unknown time zone {name!r} (use a name like Europe/Lisbon).", field=field) from None
    return name


def _audit_environment(actor: Actor, environment: Environment, action: str, **kwargs: Any) -> None:
    audit.record(
        actor=actor,
        action=action,
        object_type="environment",
        object_key=environment.key,
        object_label=environment.name,
        environment_key=environment.key,
        **kwargs,
    )


def add_window(
    *, actor: Actor, environment: Environment, days: list[int], start: dt.time, minutes: int, timezone_name: str
) -> DeploymentWindow:
    """A further weekly deployment window of the environment (manage right)."""
    if not actor.is_system:
        access.require(actor.user, environment, AccessLevel.MANAGE)
    _validate_window({"window_days": days, "window_start": start, "window_minutes": minutes})
    if not days:
        raise InvalidInput("A deployment window needs days, a start time and a duration.", field="days")
    tz = _check_timezone(timezone_name, "timezone")
    with transaction.atomic():
        window = DeploymentWindow.objects.create(
            environment=environment, days=sorted(set(days)), start=start, minutes=minutes, timezone=tz
        )
        Environment.objects.filter(pk=environment.pk).update(updated_at=dj_timezone.now())
        _audit_environment(actor, environment, "environment.window_added", message=str(window))
    return window


def delete_window(*, actor: Actor, window: DeploymentWindow) -> None:
    environment = window.environment
    if not actor.is_system:
        access.require(actor.user, environment, AccessLevel.MANAGE)
    with transaction.atomic():
        label = str(window)
        window.delete()
        Environment.objects.filter(pk=environment.pk).update(updated_at=dj_timezone.now())
        _audit_environment(actor, environment, "environment.window_removed", message=label)


def add_freeze(
    *,
    actor: Actor,
    environment: Environment,
    reason: str,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    weekday: int | None = None,
    week: int | None = None,
    timezone_name: str = "UTC",
) -> Freeze:
    """A freeze: a one-off range (``starts_at`` to ``ends_at``) or a monthly day (``weekday`` of
    the ``week``-th week, -1 the last), with a reason (manage right)."""
    if not actor.is_system:
        access.require(actor.user, environment, AccessLevel.MANAGE)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the environment is frozen.", field="reason")
    tz = _check_timezone(timezone_name, "timezone")
    monthly = weekday is not None or week is not None
    if monthly:
        if weekday not in range(7) or week not in (1, 2, 3, 4, 5, -1):
            raise InvalidInput("Choose a day of the week and which one of the month.", field="week")
        starts_at = ends_at = None
    else:
        if starts_at is None or ends_at is None:
            raise InvalidInput("A freeze needs a start and an end, or a monthly day.", field="starts_at")
        if ends_at <= starts_at:
            raise InvalidInput("The freeze must end after it starts.", field="ends_at")
    with transaction.atomic():
        freeze = Freeze.objects.create(
            environment=environment,
            reason=reason[:300],
            starts_at=starts_at,
            ends_at=ends_at,
            weekday=weekday if monthly else None,
            week=week if monthly else None,
            timezone=tz,
            created_by=actor.user,
        )
        Environment.objects.filter(pk=environment.pk).update(updated_at=dj_timezone.now())
        _audit_environment(actor, environment, "environment.freeze_added", message=str(freeze))
    return freeze


def delete_freeze(*, actor: Actor, freeze: Freeze) -> None:
    environment = freeze.environment
    if not actor.is_system:
        access.require(actor.user, environment, AccessLevel.MANAGE)
    with transaction.atomic():
        label = str(freeze)
        freeze.delete()
        Environment.objects.filter(pk=environment.pk).update(updated_at=dj_timezone.now())
        _audit_environment(actor, environment, "environment.freeze_removed", message=label)


# --- deployment zones -------------------------------------------------------------------------


def save_zone(
    *,
    actor: Actor,
    environment: Environment,
    name: str,
    frontends: list[FrontEnd],
    zone: DeploymentZone | None = None,
) -> DeploymentZone:
    """Create or change a deployment zone: a name and the environment's front-ends it groups."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Enter a name for the zone.", field="name")
    if name.lower() == DEFAULT_ZONE_NAME.lower():
        raise InvalidInput(
            f"{DEFAULT_ZONE_NAME} is the default zone (every front-end): choose another name.", field="name"
        )
    foreign = [fe.name for fe in frontends if fe.environment_id != environment.pk]
    if foreign:
        raise InvalidInput(f"Not front-ends of {environment.name}: {', '.join(foreign)}.", field="frontends")
    creating = zone is None
    with transaction.atomic():
        others = DeploymentZone.objects.filter(environment=environment).exclude(pk=getattr(zone, "pk", None))
        if others.filter(name__iexact=name).exists():
            raise InvalidInput(f"{environment.name} already has a zone named {name!r}.", field="name")
        before = {} if creating else {"name": zone.name, "frontends": sorted(fe.name for fe in zone.frontends.all())}
        if creating:
            zone = DeploymentZone(environment=environment)
        zone.name = name
        zone.save()
        zone.frontends.set(frontends)
        after = {"name": name, "frontends": sorted(fe.name for fe in frontends)}
        audit.record(
            actor=actor,
            action="zone.created" if creating else "zone.changed",
            object_type="deployment_zone",
            object_key=zone.key,
            object_label=str(zone),
            environment_key=environment.key,
            changes=audit.diff(before, after),
        )
    return zone


def delete_zone(*, actor: Actor, zone: DeploymentZone) -> None:
    """A zone a plan names stays (its plans' history needs it)."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                zone.delete()
        except ProtectedError:
            raise InvalidInput(f"Deployment plans name the zone {zone.name}: it stays.") from None
        audit.record(
            actor=actor,
            action="zone.deleted",
            object_type="deployment_zone",
            object_key=zone.key,
            object_label=str(zone),
            environment_key=zone.environment.key,
        )
