"""Continue's SQL: all of a plan's statements on the target in ONE transaction.

The applications' scripts run in dependency order inside a single transaction on the target's
application database, so that a failure in the second application's script also takes back the
first one's changes. Each statement is sent alone (``execute()`` of exactly one statement, checked
again with PostgreSQL's parser right before it is sent), inside a savepoint so that a lock wait
that times out can be retried a bounded number of times without losing what ran before it.
Statement timeouts come from the time left in the deployment window; the window's end is the
transaction's deadline. Before COMMIT the transaction is checked to still be the one that was
begun (same backend, same transaction id, same start), so nothing a statement might have done to
end it goes unnoticed, and the log says exactly what was and was not applied.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import extensions as pg_ext

from deployments.statements.parse import ScriptSyntaxError, split_and_classify_single
from deployments.steps import StepFailed, StepLog
from deployments.steps.schema import connect, describe_drift, read_live_schemas
from deployments.steps.sql import GeneratedScript, SqlStatement, _first_line

LOCK_ATTEMPTS = 4  # the first try and three retries
LOCK_BACKOFF_S = (0.5, 1.0, 2.0)
# Never start a statement with less than this left before the window ends.
MIN_SECONDS_LEFT = 1.0


@dataclasses.dataclass(frozen=True)
class StatementRun:
    application: str
    number: int  # 1-based within the plan
    source: str
    kind: str
    seconds: float
    lock_waits: int  # lock timeouts retried
    actions: tuple[dict[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class PlanExecutionReport:
    seconds: float
    statements: int
    by_application: dict[str, int]
    scripts_recorded: tuple[str, ...]
    runs: tuple[StatementRun, ...]


@dataclasses.dataclass(frozen=True)
class PlannedScript:
    """One application's share of the plan's SQL, with what Continue does instead of a statement
    (an index built at Prepare is renamed, not built)."""

    generated: GeneratedScript
    replacements: dict[int, SqlStatement] = dataclasses.field(default_factory=dict)  # 0-based index


class TransactionEnded(StepFailed):
    """The plan's transaction is not the one that was begun any more."""


def _statements(planned: Sequence[PlannedScript]) -> list[tuple[str, SqlStatement]]:
    out = []
    for script in planned:
        for index, statement in enumerate(script.generated.statements):
            out.append((script.generated.application, script.replacements.get(index, statement)))
    return out


def check_one_statement(statement: SqlStatement) -> None:
    """The last guard before a statement is sent: exactly one statement, allowed by every rule."""
    try:
        count, parsed = split_and_classify_single(statement.sql, line=statement.line or 1)
    except ScriptSyntaxError as exc:
        raise StepFailed(f"{statement.source}: PostgreSQL's parser rejects a statement: {exc.message}") from None
    if count != 1 or parsed is None:
        raise StepFailed(
            f"{statement.source}, line {statement.line}: {count} statements where one was expected; "
            "nothing was applied."
        )
    if parsed.refused is not None:
        raise StepFailed(
            f"{statement.source}, line {statement.line}: rule {parsed.refused.rule}: {parsed.refused.message}. "
            "Nothing was applied."
        )


def execute_plan_sql(
    *,
    dsn: str,
    where: str,
    planned: Sequence[PlannedScript],
    log: StepLog,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    deadline: dt.datetime | None = None,
    before_first_statement: Callable[[], None] | None = None,
    after_statement: Callable[[int, Any], None] | None = None,
    before_commit: Callable[[], None] | None = None,
) -> PlanExecutionReport:
    """Execute the plan's statements in one transaction on the database at ``dsn`` (``where`` names
    it in messages). ``before_first_statement`` runs inside the transaction right before the first
    statement (the point of no return). ``after_statement(number, cursor)`` is for injecting faults
    in tests. ``before_commit`` runs right before COMMIT: an exception from it (the console's fence:
    this attempt is no longer the live one) rolls everything back. Raises StepFailed, the transaction rolled back, with exactly what happened."""
    statements = _statements(planned)
    total = len(statements)
    by_application = {p.generated.application: len(p.generated.statements) for p in planned}
    if total == 0:
        log.info("No SQL to execute.")
        log.progress(0, 0)
        return PlanExecutionReport(0.0, 0, by_application, (), ())
    for _, statement in statements:
        check_one_statement(statement)
    started = time.monotonic()
    try:
        conn = connect(dsn)
    except psycopg2.Error as exc:
        raise StepFailed(f"Cannot connect to the application database: {_first_line(exc)}") from None
    runs: list[StatementRun] = []
    try:
        with conn.cursor() as cursor:
            # Assign the transaction id now: the check before COMMIT compares against it.
            cursor.execute("SELECT txid_current(), pg_backend_pid(), now()")
            begun = cursor.fetchone()
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(lock_timeout_ms)}ms"])
            # Two executions on one target never interleave, even from two workers; sorted, so that
            # two plans sharing applications cannot deadlock on these locks.
            for application in sorted(by_application):
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"lifetime:{application}"])
            _check_fingerprints(cursor, planned=planned, where=where)
            if before_first_statement is not None:
                before_first_statement()
            log.progress(0, total)
            for number, (application, statement) in enumerate(statements, start=1):
                try:
                    run = _run_one(
                        cursor,
                        number=number,
                        total=total,
                        application=application,
                        statement=statement,
                        log=log,
                        lock_timeout_ms=lock_timeout_ms,
                        statement_timeout_ms=statement_timeout_ms,
                        deadline=deadline,
                        runs=runs,
                        by_application=by_application,
                    )
                except pg_errors.NoActiveSqlTransaction:
                    # The console's own SAVEPOINT found no transaction: a statement before it ended it.
                    _check_same_transaction(
                        conn, cursor, begun=begun, runs=runs, total=total, by_application=by_application
                    )
                    raise
                runs.append(run)
                if after_statement is not None:
                    after_statement(number, cursor)
                log.progress(number, total)
            _check_same_transaction(conn, cursor, begun=begun, runs=runs, total=total, by_application=by_application)
            if before_commit is not None:
                before_commit()
        conn.commit()
    except TransactionEnded:
        _rollback(conn)
        raise
    except BaseException:
        _rollback(conn)
        raise
    finally:
        conn.close()
    seconds = time.monotonic() - started
    recorded = tuple(s.source for _, s in statements if s.kind == "record_script")
    parts = ", ".join(f"{name} {count}" for name, count in by_application.items())
    log.info(
        f"Committed {total} statements in one transaction on {where} ({parts}) in {seconds * 1000:.0f} ms"
        + (f"; recorded {', '.join(recorded)}." if recorded else ".")
    )
    return PlanExecutionReport(seconds, total, by_application, recorded, tuple(runs))


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except psycopg2.Error:
        pass  # the connection is gone: the server rolls the transaction back itself


def _check_fingerprints(cursor: Any, *, planned: Sequence[PlannedScript], where: str) -> None:
    problems = []
    detail: dict[str, Any] = {}
    checked = [script.generated for script in planned if script.generated.statements]
    lives = read_live_schemas(cursor, [(generated.schema, generated.application) for generated in checked])
    for generated, live in zip(checked, lives, strict=True):
        if live.fingerprint == generated.schema_fingerprint:
            continue
        differences = describe_drift(generated.schema_snapshot, live.description()) or ["(details not recorded)"]
        problems.append(f"{generated.application}: " + "; ".join(differences))
        detail[generated.application] = differences
    if problems:
        raise StepFailed(
            f"The schema in {where} changed since the SQL was generated — " + " | ".join(problems) + ". Nothing was "
            "applied. Prepare the plan again.",
            detail={"drift": detail},
        )


def _run_one(
    cursor: Any,
    *,
    number: int,
    total: int,
    application: str,
    statement: SqlStatement,
    log: StepLog,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    deadline: dt.datetime | None,
    runs: list[StatementRun],
    by_application: dict[str, int],
) -> StatementRun:
    waits = 0
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        timeout_ms = statement_timeout_ms
        if deadline is not None:
            left = (deadline - dt.datetime.now(tz=deadline.tzinfo)).total_seconds()
            if left < MIN_SECONDS_LEFT:
                raise StepFailed(
                    f"The deployment window ends before statement {number} of {total} could start "
                    f"({_where(application, statement)}): {_outcome(runs, by_application)}",
                    detail=_detail(number, statement, None, runs),
                )
            timeout_ms = max(1, min(timeout_ms, int(left * 1000)))
        cursor.execute(
            "SAVEPOINT lifetime_statement; SELECT set_config('statement_timeout', %s, true)", [f"{timeout_ms}ms"]
        )
        began = time.monotonic()
        try:
            cursor.execute(statement.sql)
        except pg_errors.LockNotAvailable as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT lifetime_statement")
            waits += 1
            tables = ", ".join(sorted({a.get("table", "") for a in statement.actions if a.get("table")})) or "a table"
            if attempt == LOCK_ATTEMPTS:
                raise StepFailed(
                    f"Statement {number} of {total} ({_where(application, statement)}) did not get its lock on "
                    f"{tables} in {LOCK_ATTEMPTS} tries of {lock_timeout_ms} ms (another session holds it): "
                    f"{_outcome(runs, by_application)}",
                    detail=_detail(number, statement, exc, runs),
                ) from None
            pause = LOCK_BACKOFF_S[min(attempt - 1, len(LOCK_BACKOFF_S) - 1)]
            log.warning(
                f"Statement {number} of {total} ({_where(application, statement)}) waited {lock_timeout_ms} ms for "
                f"its lock on {tables} (another session holds it): trying again in {pause:g} s "
                f"({attempt + 1} of {LOCK_ATTEMPTS})."
            )
            time.sleep(pause)
            continue
        except pg_errors.QueryCanceled as exc:
            raise StepFailed(
                f"Statement {number} of {total} ({_where(application, statement)}) ran past its time limit "
                f"({timeout_ms} ms, from the statement timeout and the time left in the window): "
                f"{_outcome(runs, by_application)}",
                detail=_detail(number, statement, exc, runs),
            ) from None
        except psycopg2.Error as exc:
            message = (exc.diag.message_primary or _first_line(exc)).strip()
            text = " ".join(statement.sql.split())
            text = text if len(text) <= 300 else text[:297] + "..."
            raise StepFailed(
                f"Execution failed at statement {number} of {total} ({_where(application, statement, exc)}): "
                f"{message}. Statement: {text} — {_outcome(runs, by_application)}",
                detail=_detail(number, statement, exc, runs),
            ) from None
        seconds = time.monotonic() - began
        cursor.execute("RELEASE SAVEPOINT lifetime_statement")
        return StatementRun(
            application=application,
            number=number,
            source=statement.source,
            kind=statement.kind,
            seconds=seconds,
            lock_waits=waits,
            actions=statement.actions,
        )
    raise AssertionError("unreachable")


def _check_same_transaction(
    conn: Any, cursor: Any, *, begun: tuple, runs: list[StatementRun], total: int, by_application: dict[str, int]
) -> None:
    """Before COMMIT: still inside a transaction, and the very one that was begun."""
    status = conn.info.transaction_status
    now = None
    if status == pg_ext.TRANSACTION_STATUS_INTRANS:
        cursor.execute("SELECT txid_current_if_assigned(), pg_backend_pid(), now()")
        now = cursor.fetchone()
    if now is not None and now[0] == begun[0] and now[1] == begun[1] and now[2] == begun[2]:
        return
    # Some statement ended the transaction (or the server began another): what ran up to it is
    # committed, what ran after it is in another transaction. Say it as it is.
    raise TransactionEnded(
        "The plan's transaction on the target was ended by one of its statements before the console could "
        f"commit it (expected transaction {begun[0]} of backend {begun[1]}, found "
        f"{'none' if now is None else f'{now[0]} of backend {now[1]}'}). Statements executed before that point "
        f"may be committed on the target; the console rolled back what it still could. Executed: "
        + ", ".join(f"{r.application} #{r.number} ({r.source})" for r in runs)
        + ". Check the target before doing anything else.",
        detail={"executed": [dataclasses.asdict(r) for r in runs], "total": total},
    )


def _where(application: str, statement: SqlStatement, exc: psycopg2.Error | None = None) -> str:
    where = f"{application}: {statement.source}"
    if statement.line is not None:
        where += f", line {statement.line}"
    return where


def _outcome(runs: list[StatementRun], by_application: dict[str, int]) -> str:
    if not runs:
        return "nothing was applied (no statement had run)."
    done: dict[str, int] = {}
    for run in runs:
        done[run.application] = done.get(run.application, 0) + 1
    ran = ", ".join(f"{count} of {application}'s {by_application[application]}" for application, count in done.items())
    return (
        f"nothing was applied: the plan's one transaction was rolled back, including the {ran} statements that had run."
    )


def _detail(number: int, statement: SqlStatement, exc: psycopg2.Error | None, runs: list[StatementRun]) -> dict:
    return {
        "statement_number": number,
        "statement": statement.sql,
        "source": statement.source,
        "line": statement.line,
        "sqlstate": getattr(exc, "pgcode", None),
        "message": getattr(getattr(exc, "diag", None), "message_primary", None),
        "rolled_back": [dataclasses.asdict(r) for r in runs],
    }
