"""The only code that changes environments, front-ends and roles. Each change is audited."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import psycopg2
from django.db import transaction
from django.utils.text import slugify
from psycopg2.extensions import parse_dsn

from core import audit, encryption
from core.actors import Actor
from core.refusals import Refusal
from environments.models import AccessLevel, Environment, EnvironmentAccess, FrontEnd

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
    "prepared_plan_ttl_hours",
    "sql_lock_timeout_ms",
    "sql_statement_timeout_ms",
    "build_indexes_during_prepare",
)
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


def check_connection(dsn: str, *, timeout_s: int = 5) -> ConnectionCheck:
    """Really connect and run a query; say what failed without echoing the secret."""
    try:
        params = parse_connection(dsn)
    except InvalidInput as exc:
        return ConnectionCheck(False, exc.message)
    try:
        with psycopg2.connect(dsn, connect_timeout=timeout_s) as conn, conn.cursor() as cur:
            cur.execute("select current_setting('server_version'), current_database()")
            version, database = cur.fetchone()
        conn.close()
    except psycopg2.Error as exc:
        return ConnectionCheck(False, f"Cannot connect to {connection_summary(params)}: {_first_line(exc)}")
    return ConnectionCheck(True, f"Connected to {database} on PostgreSQL {version}.")


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


def save_environment(
    *, actor: Actor, data: dict[str, Any], environment: Environment | None = None, app_db_dsn: str | None = None
) -> Environment:
    """Create or update an environment. ``app_db_dsn`` None keeps the stored connection, "" clears it."""
    _validate_window(data)
    if app_db_dsn:
        params = parse_connection(app_db_dsn)
        check = check_connection(app_db_dsn)
        if not check.ok:
            raise InvalidInput(check.message, field="app_db_dsn")
    creating = environment is None
    with transaction.atomic():
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
            if app_db_dsn:
                environment.app_db_dsn_encrypted = encryption.encrypt(app_db_dsn.strip())
                environment.app_db_summary = connection_summary(params)
            else:
                environment.app_db_dsn_encrypted = ""
                environment.app_db_summary = ""
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
    return environment


# --- front-ends -------------------------------------------------------------------------


def default_queue(environment: Environment, name: str) -> str:
    return f"frontend.{slugify(environment.name)}.{slugify(name)}"


def _prepare_folder(path: str) -> None:
    folder = Path(path)
    if not folder.is_absolute() or ".." in folder.parts:
        raise InvalidInput("The releases folder must be an absolute path without '..'.", field="releases_root")
    try:
        (folder / "releases").mkdir(parents=True, exist_ok=True)
        probe = folder / ".lifetime-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InvalidInput(f"Cannot create the folder {path}: {reason}.", field="releases_root") from None


def save_frontend(
    *, actor: Actor, environment: Environment, data: dict[str, Any], frontend: FrontEnd | None = None
) -> FrontEnd:
    creating = frontend is None
    data = dict(data)
    data["queue"] = (data.get("queue") or "").strip() or default_queue(environment, data["name"])
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", data["queue"]):
        raise InvalidInput("A queue name may hold letters, digits, '.', '-' and '_'.", field="queue")
    data["releases_root"] = os.path.normpath(data["releases_root"].strip()) if data.get("releases_root") else ""
    with transaction.atomic():
        others = FrontEnd.objects.exclude(pk=getattr(frontend, "pk", None))
        if others.filter(environment=environment, name__iexact=data["name"]).exists():
            raise InvalidInput(f"{environment.name} already has a front-end named {data['name']!r}.", field="name")
        if others.filter(queue=data["queue"]).exists():
            raise InvalidInput(f"The queue {data['queue']!r} is used by another front-end.", field="queue")
        if others.filter(releases_root=data["releases_root"]).exists():
            raise InvalidInput("Another front-end already uses this releases folder.", field="releases_root")
        _prepare_folder(data["releases_root"])
        before = {} if creating else {n: getattr(frontend, n) for n in FRONTEND_FIELDS}
        if creating:
            frontend = FrontEnd(environment=environment)
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
            changes=audit.diff(before, {n: getattr(frontend, n) for n in FRONTEND_FIELDS}),
        )
    return frontend


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
