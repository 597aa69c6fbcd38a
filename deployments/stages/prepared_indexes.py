"""Index builds moved out of the window (the environment's "Build new indexes during Prepare").

At Prepare, each new non-unique index a plan adds to a table that already exists is built with
``CREATE INDEX CONCURRENTLY`` under a name the console owns (``lifetime_prep_<plan>_<n>``):
reads and writes go on, and the running version does not use it (it names no index). Continue
then renames it to the data model's name (a catalog change) instead of building it in the window.
A unique index is left in the window: enforcing uniqueness early would change behaviour.

An index whose concurrent build fails is left invalid by PostgreSQL: it is dropped and Prepare
fails with the reason. Abort, expiry, a failed plan and Prepare Again drop the plan's indexes
(``DROP INDEX CONCURRENTLY``). The fingerprint ignores these names (steps/schema.py), so they are
never drift.

With the option on, foreign keys and checks a plan adds to existing tables are added ``NOT VALID``
in the window (no scan under the lock) and validated after the switch
(``VALIDATE CONSTRAINT``, which lets reads and writes go on).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg2
from celery import current_app
from pglast import parser as pg_parser
from pglast.stream import RawStream
from psycopg2 import sql as pgsql

from deployments.models import Application, DeploymentPlan, PreparedIndex
from deployments.stages import queue
from deployments.stages.log import append_log
from deployments.state import machine
from deployments.state.moves import PlanMove
from deployments.statements.parse import CATALOG, SHARE_UPDATE_EXCLUSIVE
from deployments.steps import StepFailed, StepLog
from deployments.steps.schema import PREPARED_INDEX_PREFIX, connect
from deployments.steps.sql import GeneratedScript, SqlStatement, _first_line
from environments.models import Environment

logger = logging.getLogger(__name__)
INDEX = PreparedIndex.State
# Indexes of a plan that still stand on the target (or may, half built): what a plan that ends drops.
LEFT_ON_TARGET = (INDEX.BUILDING, INDEX.READY, INDEX.FAILED)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def candidates(statements: list[dict[str, Any]]) -> list[int]:
    """Statements that create a non-unique index on a table that exists and has a size."""
    out = []
    for index, statement in enumerate(statements):
        actions = statement.get("actions") or []
        if statement.get("kind") not in ("create_index", "script") or len(actions) != 1:
            continue
        action = actions[0]
        detail = action.get("detail") or {}
        estimate = statement.get("estimate") or {}
        if action.get("what") != "create index" or detail.get("unique") or detail.get("new_table"):
            continue
        if not estimate.get("tables"):
            continue  # a table this plan creates: the index costs nothing in the window
        out.append(index)
    return out


def build_at_prepare(
    *,
    plan: DeploymentPlan,
    application: Application,
    target: Environment,
    schema: str,
    statements: list[dict[str, Any]],
    log: StepLog,
) -> list[dict[str, Any]]:
    """Build the candidates concurrently on the target; the statements come back marked with the
    index that stands for them and an estimate of a rename."""
    chosen = candidates(statements)
    if not chosen:
        return statements
    statements = [dict(s) for s in statements]
    dsn = target.app_db_dsn()
    for index in chosen:
        statement = statements[index]
        node = pg_parser.parse_sql(statement["sql"])[0].stmt
        final_name = node.idxname or ""
        if not final_name:
            continue  # an unnamed index gets its name from PostgreSQL: nothing to rename to
        record = PreparedIndex.objects.create(
            plan=plan,
            application=application,
            schema=node.relation.schemaname or schema,
            table=node.relation.relname,
            name=f"{PREPARED_INDEX_PREFIX}{plan.pk}_{PreparedIndex.objects.filter(plan=plan).count() + 1}"[:63],
            final_name=final_name,
            statement=statement["sql"],
        )
        node.idxname = record.name
        node.concurrent = True
        sql = RawStream()(node)
        log.info(
            f"Building index {final_name} on {record.schema}.{record.table} concurrently ahead of the window "
            f"as {record.name} (reads and writes go on)."
        )
        started = time.monotonic()
        try:
            _build(dsn, sql, record, lock_timeout_ms=int(target.sql_lock_timeout_ms))
        except StepFailed as exc:
            PreparedIndex.objects.filter(pk=record.pk).update(state=INDEX.FAILED, message=exc.message)
            raise
        seconds = time.monotonic() - started
        size = int((statement.get("estimate") or {}).get("bytes") or 0)
        PreparedIndex.objects.filter(pk=record.pk).update(state=INDEX.READY, seconds=seconds, bytes=size)
        log.info(f"Index {record.name} is ready ({seconds:.1f} s): Continue renames it to {final_name}.")
        estimate = dict(statement.get("estimate") or {})
        estimate.update(
            cost=CATALOG,
            cost_label="catalog only (built at Prepare)",
            lock=SHARE_UPDATE_EXCLUSIVE,
            blocks="",
            typical_s=0.005,
            pessimistic_s=0.05,
        )
        statement["estimate"] = estimate
        statement["prepared_index"] = {"name": record.name, "seconds": round(seconds, 3)}
    return statements


def _build(dsn: str, sql: str, record: PreparedIndex, *, lock_timeout_ms: int) -> None:
    conn = connect(dsn, application_name="lifetime-prepare-index")
    conn.autocommit = True  # CREATE INDEX CONCURRENTLY refuses to run inside a transaction
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{lock_timeout_ms}ms"])
            try:
                cursor.execute(sql)
            except psycopg2.Error as exc:
                reason = _first_line(exc)
                _drop(cursor, record)
                raise StepFailed(
                    f"Building index {record.final_name} on {record.schema}.{record.table} concurrently failed: "
                    f"{reason}. The half-built index was dropped; nothing else changed."
                ) from None
            cursor.execute(
                "select i.indisvalid from pg_index i join pg_class c on c.oid = i.indexrelid "
                "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s",
                [record.schema, record.name],
            )
            row = cursor.fetchone()
            if row is None or not row[0]:
                _drop(cursor, record)
                raise StepFailed(
                    f"The concurrent build of index {record.final_name} on {record.schema}.{record.table} left an "
                    "invalid index: it was dropped. Prepare again."
                )
    finally:
        conn.close()


def _drop(cursor: Any, record: PreparedIndex) -> None:
    cursor.execute(
        pgsql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
            pgsql.Identifier(record.schema), pgsql.Identifier(record.name)
        )
    )


def ready_by_application(plan: DeploymentPlan) -> dict[int, list[PreparedIndex]]:
    """The plan's indexes built at Prepare and ready, per application id: one query for the plan."""
    out: dict[int, list[PreparedIndex]] = {}
    for record in PreparedIndex.objects.filter(plan=plan, state=INDEX.READY):
        out.setdefault(record.application_id, []).append(record)
    return out


def replacements(
    plan: DeploymentPlan,
    application: Application,
    script: GeneratedScript,
    *,
    target: Environment,
    ready_records: list[PreparedIndex] | None = None,
) -> dict[int, SqlStatement]:
    """What Continue runs instead of the CREATE INDEX statements built at Prepare: a rename. Only
    for indexes still there and valid; a missing one is built in the window as planned.
    ``ready_records``: the application's ready indexes when the caller read them for the whole plan."""
    if ready_records is None:
        ready_records = list(PreparedIndex.objects.filter(plan=plan, application=application, state=INDEX.READY))
    ready = {r.statement: r for r in ready_records}
    if not ready:
        return {}
    present = _valid_indexes(target, list(ready.values()))
    out = {}
    for index, statement in enumerate(script.statements):
        record = ready.get(statement.sql)
        if record is None or record.name not in present:
            continue
        out[index] = SqlStatement(
            sql=f"ALTER INDEX {_q(record.schema)}.{_q(record.name)} RENAME TO {_q(record.final_name)}",
            kind="rename_prepared_index",
            source=statement.source,
            line=statement.line,
            actions=(
                {
                    "what": "rename index",
                    "table": f"{record.schema}.{record.table}",
                    "lock": SHARE_UPDATE_EXCLUSIVE,
                    "cost": CATALOG,
                    "detail": {"index": record.final_name},
                },
            ),
            estimate=statement.estimate,
        )
    return out


def _valid_indexes(target: Environment, records: list[PreparedIndex]) -> set[str]:
    conn = connect(target.app_db_dsn())
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "select c.relname from pg_index i join pg_class c on c.oid = i.indexrelid "
                "join pg_namespace n on n.oid = c.relnamespace where i.indisvalid and n.nspname = any(%s) "
                "and c.relname = any(%s)",
                [sorted({r.schema for r in records}), [r.name for r in records]],
            )
            return {name for (name,) in cursor.fetchall()}
    finally:
        conn.close()


def mark_used(plan: DeploymentPlan) -> None:
    PreparedIndex.objects.filter(plan=plan, state=INDEX.READY).update(state=INDEX.USED)


def drop_for_plan(plan_id: int, *, why: str) -> int:
    """Drop the plan's indexes built at Prepare that Continue did not use. Idempotent."""
    records = list(
        PreparedIndex.objects.select_related("plan__target").filter(plan_id=plan_id, state__in=LEFT_ON_TARGET)
    )
    if not records:
        return 0
    target = records[0].plan.target
    conn = connect(target.app_db_dsn(), application_name="lifetime-prepare-index")
    conn.autocommit = True
    dropped = 0
    try:
        with conn.cursor() as cursor:
            for record in records:
                try:
                    _drop(cursor, record)
                except psycopg2.Error as exc:
                    PreparedIndex.objects.filter(pk=record.pk).update(message=_first_line(exc))
                    logger.warning("could not drop prepared index %s: %s", record.name, _first_line(exc))
                    continue
                PreparedIndex.objects.filter(pk=record.pk).update(state=INDEX.DROPPED, message=why)
                dropped += 1
    finally:
        conn.close()
    if dropped:
        append_log(plan_id, "info", f"Dropped {dropped} index(es) built at Prepare ({why}).")
    return dropped


DROP_TASK = "deployments.tasks.drop_prepared_indexes"


def plan_moved(move: PlanMove) -> None:
    """Listens to every committed move of a plan (registered at app start): indexes built for a
    plan that ends without continuing are dropped by a worker (never in the request that aborted
    it)."""
    if not machine.is_final(move.to):
        return
    if not PreparedIndex.objects.filter(plan_id=move.plan_id, state__in=LEFT_ON_TARGET).exists():
        return
    why = f"the plan is {machine.label(move.to).lower()}"
    current_app.send_task(DROP_TASK, args=[move.plan_id, why], queue=queue.STAGES_QUEUE)


# --- constraints validated after the window ------------------------------------------------------


def defer_validation(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A foreign key or check added to an existing table by a single-command ALTER TABLE becomes
    ``NOT VALID`` in the window (no scan under its lock); it is validated after the switch."""
    out = []
    for statement in statements:
        actions = statement.get("actions") or []
        estimate = statement.get("estimate") or {}
        if (
            len(actions) == 1
            and actions[0].get("what") in ("add foreign key", "add check")
            and not (actions[0].get("detail") or {}).get("not_valid")
            and (actions[0].get("detail") or {}).get("constraint")
            and estimate.get("tables")
        ):
            node = pg_parser.parse_sql(statement["sql"])[0].stmt
            constraint = node.cmds[0].def_
            constraint.skip_validation = True
            constraint.initially_valid = False
            action = actions[0]
            statement = {
                **statement,
                "sql": RawStream()(node),
                "validate_after": {"table": action["table"], "constraint": action["detail"]["constraint"]},
                "actions": [{**action, "cost": CATALOG, "detail": {**action["detail"], "not_valid": True}}],
                "estimate": {
                    **estimate,
                    "cost": CATALOG,
                    "cost_label": "catalog only (validated after the window)",
                    "typical_s": 0.005,
                    "pessimistic_s": 0.05,
                },
            }
        out.append(statement)
    return out


def validate_deferred(*, target: Environment, statements: list[dict[str, Any]], schema: str, log: StepLog) -> list[str]:
    """VALIDATE CONSTRAINT for each constraint added NOT VALID in the window; the problems, if any."""
    pending = [s["validate_after"] for s in statements if s.get("validate_after")]
    if not pending:
        return []
    problems = []
    conn = connect(target.app_db_dsn(), application_name="lifetime-validate")
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{int(target.sql_lock_timeout_ms)}ms"])
            for item in pending:
                table = item["table"] if "." in item["table"] else f"{schema}.{item['table']}"
                table_schema, table_name = table.split(".", 1)
                started = time.monotonic()
                try:
                    cursor.execute(
                        pgsql.SQL("ALTER TABLE {}.{} VALIDATE CONSTRAINT {}").format(
                            pgsql.Identifier(table_schema),
                            pgsql.Identifier(table_name),
                            pgsql.Identifier(item["constraint"]),
                        )
                    )
                except psycopg2.Error as exc:
                    problems.append(
                        f"Constraint {item['constraint']} on {table} stays NOT VALID (new rows are checked, existing "
                        f"ones were not): {_first_line(exc)}"
                    )
                    continue
                log.info(
                    f"Validated constraint {item['constraint']} on {table} after the window in "
                    f"{time.monotonic() - started:.1f} s (reads and writes went on)."
                )
    finally:
        conn.close()
    for problem in problems:
        log.warning(problem)
    return problems
