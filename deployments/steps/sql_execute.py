"""Rehearse SQL (at Prepare, on a scratch copy) and execute it (at Continue, on the target).

Both run the generated statements in one transaction, statement by statement, so that a failure
names the statement, its place in its script and PostgreSQL's message. Execution first checks that
the target still has the schema the SQL was generated against (the fingerprint): the statements
were planned for that schema and nothing else.
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
    seconds: float  # running the statements, what Continue will roughly spend
    total_seconds: float  # with creating, filling and dropping the scratch database
    statements: int


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


def check_schema_unchanged(*, environment: Any, generated: GeneratedScript, log: StepLog) -> None:
    """StepFailed, naming the differences, when the target's schema is not the one SQL was generated for."""
    conn = _connect(_dsn_of(environment))
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cursor:
            _check_fingerprint(cursor, generated=generated, where=environment.name)
    finally:
        conn.close()
    log.info(f"Schema of {generated.schema} on {environment.name} is the one SQL was generated for.")


def current_fingerprint(*, environment: Any, schema: str, application: str) -> str:
    """The live fingerprint of ``application``'s schema in ``environment``: what Prepare records."""
    conn = _connect(_dsn_of(environment))
    try:
        with conn.cursor() as cursor:
            return read_live_schema(cursor, schema=schema, application=application).fingerprint
    finally:
        conn.close()


def _check_fingerprint(cursor: Any, *, generated: GeneratedScript, where: str) -> None:
    live = read_live_schema(cursor, schema=generated.schema, application=generated.application)
    if live.fingerprint == generated.schema_fingerprint:
        return
    differences = describe_drift(generated.schema_snapshot, live.description()) or ["(details not recorded)"]
    raise StepFailed(
        f"The schema of {generated.application} in {where} changed since its SQL was generated: "
        + "; ".join(differences)
        + ". Prepare the plan again.",
        detail={"drift": differences, "expected": generated.schema_fingerprint, "found": live.fingerprint},
    )


# --- rehearsal ---------------------------------------------------------------------


def rehearse_sql(*, environment: Any, generated: GeneratedScript, log: StepLog) -> RehearsalReport:
    """Run the statements on a scratch database holding a copy of the target's schema, then drop it.

    The target is only read. The scratch database is created on the same server (the role in the
    connection string needs CREATEDB), so that extensions and server version match.
    """
    dsn = _dsn_of(environment)
    started = time.monotonic()
    conn = _connect(dsn)
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cursor:
            live = read_live_schema(
                cursor, schema=generated.schema, application=generated.application, definitions=True
            )
            server = conn.server_version
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
    scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    admin = _connect(dsn)
    admin.autocommit = True  # CREATE/DROP DATABASE refuse to run inside a transaction
    try:
        with admin.cursor() as cursor:
            try:
                cursor.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE template0").format(pgsql.Identifier(scratch)))
            except psycopg2.Error as exc:
                raise StepFailed(
                    f"Cannot create the scratch database for the rehearsal on {environment.name}'s server "
                    f"(the connection's role needs CREATEDB): {_first_line(exc)}"
                ) from None
        try:
            seconds = _rehearse_in(
                make_dsn(dsn, dbname=scratch), live=live, generated=generated, environment=environment, log=log
            )
        finally:
            with admin.cursor() as cursor:
                drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if server >= 130000 else "DROP DATABASE IF EXISTS {}"
                cursor.execute(pgsql.SQL(drop).format(pgsql.Identifier(scratch)))
    finally:
        admin.close()
    total = time.monotonic() - started
    log.info(
        f"Rehearsed {len(generated.statements)} statements of {generated.application} {generated.version} "
        f"on a scratch copy: {seconds * 1000:.0f} ms ({total:.1f} s with the copy)."
    )
    return RehearsalReport(seconds=seconds, total_seconds=total, statements=len(generated.statements))


def _rehearse_in(dsn: str, *, live, generated: GeneratedScript, environment: Any, log: StepLog) -> float:
    conn = _connect(dsn)
    try:
        with conn.cursor() as cursor:
            for statement in recreate_statements(live):
                try:
                    cursor.execute(statement)
                except psycopg2.Error as exc:
                    # The copy failing is the console's problem, not the application's: say so.
                    raise StepFailed(
                        f"Could not copy the schema of {generated.schema} to the rehearsal database: "
                        f"{_first_line(exc)} in: {statement[:300]}"
                    ) from None
        conn.commit()
        with conn.cursor() as cursor:
            started = time.monotonic()
            _set_timeouts(cursor, environment)
            _run(cursor, generated.statements, log=log, stage="Rehearsal")
            seconds = time.monotonic() - started
        conn.rollback()
        return seconds
    finally:
        conn.close()


# --- execution -------------------------------------------------------------------------


def execute_sql(
    *,
    environment: Any,
    generated: GeneratedScript,
    log: StepLog,
    before_first_statement: Callable[[], None] | None = None,
) -> ExecutionReport:
    """Execute the statements on the target in one transaction, scripts recorded in the same one.

    Refuses (StepFailed) when the schema drifted since generation. ``before_first_statement`` is
    called once, inside the transaction, right before the first statement runs: the plan runner
    marks its point of no return there (and may raise to stop). A failure rolls everything back.
    """
    if not generated.statements:
        log.info(f"No SQL to execute for {generated.application}.")
        log.progress(0, 0)
        return ExecutionReport(seconds=0.0, statements=0, scripts_recorded=())
    conn = _connect(_dsn_of(environment))
    started = time.monotonic()
    try:
        with conn.cursor() as cursor:
            _set_timeouts(cursor, environment)
            # Two executions for one application never interleave, even from two workers.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"lifetime:{generated.application}"])
            _check_fingerprint(cursor, generated=generated, where=environment.name)
            if before_first_statement is not None:
                before_first_statement()
            _run(cursor, generated.statements, log=log, stage="Execution")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    seconds = time.monotonic() - started
    recorded = tuple(s.source for s in generated.statements if s.kind == "record_script")
    log.info(
        f"Executed {len(generated.statements)} statements for {generated.application} {generated.version} "
        f"on {environment.name} in {seconds * 1000:.0f} ms"
        + (f"; recorded {', '.join(recorded)}." if recorded else ".")
    )
    return ExecutionReport(seconds=seconds, statements=len(generated.statements), scripts_recorded=recorded)


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
    "check_schema_unchanged",
    "current_fingerprint",
    "execute_sql",
    "rehearse_sql",
]
