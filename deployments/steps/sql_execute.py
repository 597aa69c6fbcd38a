"""Rehearse SQL at Prepare, on a scratch copy of the target's schema on the console's own
rehearsal server (never the target's), as a role without rights on that server's host.

The rehearsal runs the generated statements in one transaction, statement by statement, so that
a failure names the statement, its place in its script and PostgreSQL's message; it also sees
which statements really rewrite a table. Execution at Continue (all of a plan's statements in one
transaction on the target) lives in ``steps/sql_window.py``; ``execute_sql`` here runs one
application's statements through it.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg2
from psycopg2 import sql as pgsql
from psycopg2.extensions import make_dsn

from deployments.steps import StepFailed, StepLog
from deployments.steps.schema import connect, describe_drift, read_live_schema, recreate_statements
from deployments.steps.sql import GeneratedScript, SqlStatement, _first_line

SCRATCH_PREFIX = "lifetime_rehearsal_"


@dataclasses.dataclass(frozen=True)
class RehearsalReport:
    seconds: float  # running the statements on an empty copy: the catalog part of Continue
    total_seconds: float  # with creating, filling and dropping the scratch database
    statements: int
    rewritten: tuple[int, ...] = ()  # statements seen rewriting an existing table


@dataclasses.dataclass(frozen=True)
class ExecutionReport:
    seconds: float
    statements: int
    scripts_recorded: tuple[str, ...]


def _dsn_of(environment: Any) -> str:
    dsn = environment.app_db_dsn()
    if not dsn:
        raise StepFailed(f"{environment.name} has no application database configured.")
    return dsn


# --- fingerprint ---------------------------------------------------------------------


def current_fingerprint(*, environment: Any, schema: str, application: str) -> str:
    """The live fingerprint of ``application``'s schema in ``environment``: what Prepare records."""
    conn = _connect(_dsn_of(environment))
    try:
        with conn.cursor() as cursor:
            return read_live_schema(cursor, schema=schema, application=application).fingerprint
    finally:
        conn.close()


# --- rehearsal ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RehearsalServer:
    """The console's own PostgreSQL for rehearsals: ``admin_dsn`` creates and drops scratch
    databases; the scripts run as ``role`` (no superuser, server-program or server-file rights)."""

    admin_dsn: str
    role: str
    role_password: str = ""

    @classmethod
    def from_settings(cls) -> RehearsalServer:
        from django.conf import settings

        return cls(
            admin_dsn=settings.REHEARSAL_DATABASE_URL,
            role=settings.REHEARSAL_ROLE,
            role_password=settings.REHEARSAL_ROLE_PASSWORD,
        )

    def role_dsn(self, dbname: str) -> str:
        extra = {"password": self.role_password} if self.role_password else {}
        return make_dsn(self.admin_dsn, dbname=dbname, user=self.role, **extra)

    def summary(self) -> str:
        from psycopg2.extensions import parse_dsn

        params = parse_dsn(self.admin_dsn)
        return f"{params.get('host') or 'local socket'}:{params.get('port') or 5432}"


# Rights the rehearsal role must never have: what a script could do to the server's host.
_ROLE_CHECK = """
select r.rolsuper or r.rolcreaterole or r.rolreplication or r.rolbypassrls,
       coalesce((select bool_or(pg_has_role(r.oid, g.oid, 'member'))
                   from pg_roles g where g.rolname in ('pg_execute_server_program', 'pg_read_server_files',
                                                       'pg_write_server_files', 'pg_signal_backend')), false)
  from pg_roles r where r.rolname = %s
"""


def ensure_rehearsal_role(admin: Any, server: RehearsalServer) -> None:
    """Create the rehearsal role when missing; refuse to rehearse if it has rights it must not have."""
    with admin.cursor() as cursor:
        cursor.execute(_ROLE_CHECK, [server.role])
        row = cursor.fetchone()
        if row is None:
            password = (
                pgsql.SQL(" PASSWORD {}").format(pgsql.Literal(server.role_password))
                if server.role_password
                else pgsql.SQL("")
            )
            cursor.execute(
                pgsql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS").format(
                    pgsql.Identifier(server.role)
                )
                + password
            )
            return
    if row[0] or row[1]:
        raise StepFailed(
            f"The rehearsal role {server.role} has superuser, role, replication or server-program/file rights: "
            "a rehearsal must not be able to reach the server's host. Use a role without them."
        )


def rehearse_sql(
    *,
    environment: Any,
    generated: GeneratedScript,
    log: StepLog,
    server: RehearsalServer | None = None,
) -> RehearsalReport:
    """Run the statements on a scratch database of the rehearsal server, holding a copy of the
    target's schema, then drop it. The target only receives catalog reads (its schema, its version);
    the scratch database lives on the console's own rehearsal server, never on the target's."""
    server = server or RehearsalServer.from_settings()
    dsn = _dsn_of(environment)
    started = time.monotonic()
    conn = _connect(dsn)
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cursor:
            live = read_live_schema(
                cursor, schema=generated.schema, application=generated.application, definitions=True
            )
        target_major = conn.server_version // 10000
    finally:
        conn.close()
    if live.fingerprint != generated.schema_fingerprint:
        differences = describe_drift(generated.schema_snapshot, live.description())
        raise StepFailed(
            f"The schema of {generated.application} in {environment.name} changed while the plan was being "
            f"prepared: {'; '.join(differences)}. Prepare again."
        )
    if not generated.statements:
        log.info(f"Nothing to rehearse for {generated.application}: no SQL.")
        return RehearsalReport(seconds=0.0, total_seconds=time.monotonic() - started, statements=0)
    try:
        admin = psycopg2.connect(server.admin_dsn, connect_timeout=10, application_name="lifetime-rehearsal")
    except psycopg2.Error as exc:
        raise StepFailed(
            f"The rehearsal server ({server.summary()}) does not answer: {_first_line(exc)}. Start it "
            "(scripts/bootstrap.sh starts a private one) or set REHEARSAL_DATABASE_URL. The SQL is never "
            "rehearsed on the target's own server."
        ) from None
    admin.autocommit = True  # CREATE/DROP DATABASE refuse to run inside a transaction
    scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        if admin.server_version // 10000 != target_major:
            raise StepFailed(
                f"The rehearsal server ({server.summary()}) runs PostgreSQL {admin.server_version // 10000} and "
                f"{environment.name}'s database PostgreSQL {target_major}: a rehearsal must run on the same major "
                "version. Point REHEARSAL_DATABASE_URL at a server of that version."
            )
        ensure_rehearsal_role(admin, server)
        with admin.cursor() as cursor:
            cursor.execute(
                pgsql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    pgsql.Identifier(scratch), pgsql.Identifier(server.role)
                )
            )
        try:
            _create_extensions(make_dsn(server.admin_dsn, dbname=scratch), live.extensions, server)
            seconds, rewritten = _rehearse_in(
                server.role_dsn(scratch), live=live, generated=generated, environment=environment, log=log
            )
        finally:
            with admin.cursor() as cursor:
                cursor.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(scratch)))
    finally:
        admin.close()
    total = time.monotonic() - started
    log.info(
        f"Rehearsed {len(generated.statements)} statements of {generated.application} {generated.version} "
        f"on a scratch copy on the rehearsal server ({server.summary()}, role {server.role}): "
        f"{seconds * 1000:.0f} ms ({total:.1f} s with the copy)."
    )
    return RehearsalReport(
        seconds=seconds, total_seconds=total, statements=len(generated.statements), rewritten=rewritten
    )


def _create_extensions(dsn: str, extensions: tuple[str, ...], server: RehearsalServer) -> None:
    if not extensions:
        return
    conn = psycopg2.connect(dsn, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            for name in extensions:
                try:
                    cursor.execute(pgsql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(pgsql.Identifier(name)))
                except psycopg2.Error as exc:
                    raise StepFailed(
                        f"The extension {name} of the target is not available on the rehearsal server "
                        f"({server.summary()}): {_first_line(exc)}"
                    ) from None
    finally:
        conn.close()


_RELFILENODES = """
select n.nspname || '.' || c.relname, c.relfilenode from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'm') and n.nspname not in ('pg_catalog', 'information_schema')
"""


def _rehearse_in(
    dsn: str, *, live, generated: GeneratedScript, environment: Any, log: StepLog
) -> tuple[float, tuple[int, ...]]:
    """Seconds the statements took, and the (0-based) statements that rewrote an existing table:
    seen from the table's file changing, which settles what the parser can only guess (a type
    change that is binary-coercible rewrites nothing)."""
    conn = _connect(dsn)
    try:
        with conn.cursor() as cursor:
            for statement in recreate_statements(live):
                if statement.startswith("CREATE EXTENSION"):
                    continue  # created by the rehearsal server's administrator beforehand
                try:
                    cursor.execute(statement)
                except psycopg2.Error as exc:
                    # The copy failing is the console's problem, not the application's: say so.
                    raise StepFailed(
                        f"Could not copy the schema of {generated.schema} to the rehearsal database: "
                        f"{_first_line(exc)} in: {statement[:300]}"
                    ) from None
        conn.commit()
        rewritten: list[int] = []
        with conn.cursor() as cursor:
            cursor.execute(_RELFILENODES)
            files = dict(cursor.fetchall())
            started = time.monotonic()
            _set_timeouts(cursor, environment)
            total = len(generated.statements)
            log.progress(0, total)
            for number, statement in enumerate(generated.statements, start=1):
                try:
                    cursor.execute(statement.sql)
                except psycopg2.Error as exc:
                    raise StepFailed(
                        _failure_message("Rehearsal", number, total, statement, exc),
                        detail=_failure_detail(number, statement, exc),
                    ) from None
                if any(a.get("cost") == "rewrite" for a in statement.actions):
                    cursor.execute(_RELFILENODES)
                    now = dict(cursor.fetchall())
                    if any(files.get(name) not in (None, now.get(name)) for name in files):
                        rewritten.append(number - 1)
                    files = now
                log.progress(number, total)
            seconds = time.monotonic() - started
        conn.rollback()
        return seconds, tuple(rewritten)
    finally:
        conn.close()


# --- execution -------------------------------------------------------------------------


def execute_sql(
    *,
    environment: Any,
    generated: GeneratedScript,
    log: StepLog,
    before_first_statement: Callable[[], None] | None = None,
    deadline: Any = None,
) -> ExecutionReport:
    """Execute one application's statements on the target in one transaction (a plan's SQL, all
    applications together, goes through ``steps.sql_window.execute_plan_sql``)."""
    from deployments.steps.sql_window import PlannedScript, execute_plan_sql

    if not generated.statements:
        log.info(f"No SQL to execute for {generated.application}.")
        log.progress(0, 0)
        return ExecutionReport(seconds=0.0, statements=0, scripts_recorded=())
    report = execute_plan_sql(
        dsn=_dsn_of(environment),
        where=environment.name,
        planned=[PlannedScript(generated=generated)],
        log=log,
        lock_timeout_ms=int(environment.sql_lock_timeout_ms),
        statement_timeout_ms=int(environment.sql_statement_timeout_ms),
        deadline=deadline,
        before_first_statement=before_first_statement,
    )
    return ExecutionReport(
        seconds=report.seconds, statements=report.statements, scripts_recorded=report.scripts_recorded
    )


def _set_timeouts(cursor: Any, environment: Any) -> None:
    # SET LOCAL: the limits end with the transaction, whatever the connection is used for next.
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(environment.sql_lock_timeout_ms)}ms"])
    cursor.execute(
        "SELECT set_config('statement_timeout', %s, true)", [f"{int(environment.sql_statement_timeout_ms)}ms"]
    )


def _run(cursor: Any, statements: tuple[SqlStatement, ...], *, log: StepLog, stage: str) -> None:
    total = len(statements)
    log.progress(0, total)
    for number, statement in enumerate(statements, start=1):
        try:
            cursor.execute(statement.sql)
        except psycopg2.Error as exc:
            raise StepFailed(
                _failure_message(stage, number, total, statement, exc), detail=_failure_detail(number, statement, exc)
            ) from None
        log.progress(number, total)


def _position(statement: SqlStatement, exc: psycopg2.Error) -> tuple[int, int] | None:
    """(line, column) of PostgreSQL's error position inside the statement, when it gave one."""
    raw = getattr(exc.diag, "statement_position", None)
    if not raw:
        return None
    offset = int(raw) - 1
    before = statement.sql[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _failure_message(stage: str, number: int, total: int, statement: SqlStatement, exc: psycopg2.Error) -> str:
    message = (exc.diag.message_primary or _first_line(exc)).strip()
    where = statement.source
    if statement.line is not None:
        position = _position(statement, exc)
        line = statement.line + (position[0] - 1 if position else 0)
        where += f", line {line}" + (f", column {position[1]}" if position and position[0] > 1 else "")
    elif (position := _position(statement, exc)) is not None:
        where += f", line {position[0]} column {position[1]} of the statement"
    text = " ".join(statement.sql.split())
    text = text if len(text) <= 300 else text[:297] + "..."
    outcome = "nothing was applied" if stage == "Execution" else "the target was not touched"
    return f"{stage} failed at statement {number} of {total} ({where}): {message}. Statement: {text} — {outcome}."


def _failure_detail(number: int, statement: SqlStatement, exc: psycopg2.Error) -> dict[str, Any]:
    return {
        "statement_number": number,
        "statement": statement.sql,
        "source": statement.source,
        "line": statement.line,
        "position": getattr(exc.diag, "statement_position", None),
        "sqlstate": exc.pgcode,
        "message": exc.diag.message_primary,
        "hint": exc.diag.message_hint,
    }


def _connect(dsn: str):
    try:
        return connect(dsn)
    except psycopg2.Error as exc:
        raise StepFailed(f"Cannot connect to the application database: {_first_line(exc)}") from None


__all__ = [
    "ExecutionReport",
    "RehearsalReport",
    "current_fingerprint",
    "execute_sql",
    "rehearse_sql",
]
