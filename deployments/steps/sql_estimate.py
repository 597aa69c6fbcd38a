"""How long a plan's SQL will take in the window, from the target's own table sizes.

At Prepare the target's catalog gives each table's size (``pg_class``, ``pg_relation_size``,
``pg_indexes_size``: no scan of any table). Each statement's actions (from PostgreSQL's parser)
say what kind of work they are; the bytes that work reads or writes, divided by a throughput,
give seconds. Throughputs come, in this order, from:

1. the target's own past executions of that kind of work (``SqlTiming`` rows for the environment,
   written by Continue and by index builds at Prepare);
2. a measurement on the rehearsal server (a table of a few hundred thousand rows rewritten,
   indexed, scanned and updated), said as such on the page: the target's disks may differ;
3. a built-in guess, said as such.

Each estimate is a range: typical (the median of what was seen) and pessimistic (the slowest seen,
slowed further, plus one lock wait per table whose lock conflicts with readers or writers).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg2
from psycopg2 import sql as pgsql

from deployments.statements.parse import (
    CATALOG,
    COST_LABELS,
    DATA_CHANGE,
    INDEX_BUILD,
    REWRITE,
    SCAN,
    blocks,
)

# Seconds a catalog-only statement takes once it has its lock (typical, pessimistic).
CATALOG_SECONDS = (0.005, 0.05)
# Below this, a measured run says more about round trips than about throughput: not used to calibrate.
MIN_CALIBRATION_BYTES = 4 * 1024 * 1024
# Built-in guesses (bytes per second) when nothing was measured: a modest server's disk.
DEFAULT_THROUGHPUT = {REWRITE: 60e6, INDEX_BUILD: 40e6, SCAN: 200e6, DATA_CHANGE: 40e6}
PESSIMISTIC_SLOWDOWN = 1.5  # the slowest run seen, slowed by half again
REHEARSAL_SLOWDOWN = 2.0  # a rehearsal server's speed says little of the target's disks
CALIBRATION_ROWS = 300_000

SIZES_QUERY = """
select n.nspname, c.relname, greatest(c.reltuples, 0)::bigint, c.relpages::bigint,
       pg_relation_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid),
       (select count(*) from pg_index x where x.indrelid = c.oid)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'm') and n.nspname = any(%s)
"""


@dataclasses.dataclass(frozen=True)
class TableSize:
    rows: int
    heap_bytes: int
    index_bytes: int
    total_bytes: int
    indexes: int

    def as_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def read_table_sizes(cursor: Any, schemas: Iterable[str]) -> dict[str, TableSize]:
    """``{"schema.table": TableSize}`` from the catalog only (sizes of files, not their contents)."""
    cursor.execute(SIZES_QUERY, [sorted(set(schemas))])
    return {
        f"{schema}.{table}": TableSize(
            rows=int(rows), heap_bytes=int(heap), index_bytes=int(index), total_bytes=int(total), indexes=int(count)
        )
        for schema, table, rows, _pages, heap, index, total, count in cursor.fetchall()
    }


@dataclasses.dataclass(frozen=True)
class Throughput:
    typical: float  # bytes per second
    pessimistic: float
    basis: str  # "target" (N runs there), "rehearsal" (measured there), "guess"
    runs: int = 0

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def throughput_from_runs(runs: Sequence[tuple[int, float]], *, basis: str) -> Throughput | None:
    """From ``(bytes, seconds)`` of past runs: typical is all their bytes over all their seconds (a
    mean of rates would favour the fast runs), pessimistic the slowest run's rate, slowed further."""
    runs = [(b, s) for b, s in runs if b > 0 and s > 0]
    if not runs:
        return None
    typical = sum(b for b, _ in runs) / sum(s for _, s in runs)
    pessimistic = min(b / s for b, s in runs) / PESSIMISTIC_SLOWDOWN
    return Throughput(typical=typical, pessimistic=pessimistic, basis=basis, runs=len(runs))


def default_throughputs() -> dict[str, Throughput]:
    return {
        cost: Throughput(typical=rate, pessimistic=rate / 3, basis="guess") for cost, rate in DEFAULT_THROUGHPUT.items()
    }


def _resolve(table: str, schema: str, sizes: dict[str, TableSize]) -> tuple[str, TableSize | None]:
    if "." in table:
        return table, sizes.get(table)
    for candidate in (f"{schema}.{table}", f"public.{table}"):
        if candidate in sizes:
            return candidate, sizes[candidate]
    return f"{schema}.{table}", None


def _bytes_for(action: dict[str, Any], size: TableSize | None) -> tuple[int, int]:
    """(typical, pessimistic) bytes this action reads or writes on a table of ``size``."""
    if size is None or action.get("detail", {}).get("new_table"):
        return 0, 0
    cost = action["cost"]
    if cost == REWRITE:
        return size.total_bytes, size.total_bytes  # the heap and every index are written again
    if cost in (INDEX_BUILD, SCAN):
        return size.heap_bytes, size.heap_bytes
    if cost == DATA_CHANGE:
        detail = action.get("detail") or {}
        if action.get("what") == "insert" and detail.get("values"):
            return 0, 0
        if detail.get("where"):
            # A WHERE may touch one row or all of them: typical assumes a tenth, pessimistic all.
            return size.heap_bytes // 10, size.heap_bytes
        return size.heap_bytes, size.heap_bytes
    return 0, 0


def estimate_statements(
    statements: Sequence[dict[str, Any]],
    *,
    schema: str,
    sizes: dict[str, TableSize],
    throughputs: dict[str, Throughput],
    lock_timeout_s: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each statement's estimate (``{lock, blocks, cost, bytes, typical_s, pessimistic_s, tables}``)
    and the totals. ``statements`` are SqlStatement.as_json() dicts."""
    out = []
    total_typical = total_pessimistic = 0.0
    waited_on: set[str] = set()
    for statement in statements:
        actions = statement.get("actions") or []
        typical = pessimistic = 0.0
        bytes_typical = bytes_pessimistic = 0
        costs: list[str] = []
        tables: list[str] = []
        lock = ""
        for action in actions:
            name, size = _resolve(action.get("table") or "", schema, sizes)
            cost = action["cost"]
            if size is None and cost in (REWRITE, INDEX_BUILD, SCAN, DATA_CHANGE):
                cost = CATALOG  # a table this plan creates: empty when the statement runs
            b_typ, b_pes = _bytes_for(action, size)
            costs.append(cost)
            if size is not None:
                tables.append(name)
            rate = throughputs.get(cost)
            if cost == CATALOG or rate is None or b_pes == 0:
                typical += CATALOG_SECONDS[0]
                pessimistic += CATALOG_SECONDS[1]
            else:
                typical += b_typ / rate.typical
                pessimistic += b_pes / rate.pessimistic
            bytes_typical += b_typ
            bytes_pessimistic += b_pes
            if _rank(action.get("lock", "")) > _rank(lock):
                lock = action.get("lock", "")
            # Someone may hold a conflicting lock: the first wait for each table is counted once.
            if size is not None and blocks(action.get("lock", "")) and name not in waited_on:
                waited_on.add(name)
                pessimistic += lock_timeout_s
        if not actions:
            costs.append(CATALOG)
            typical += CATALOG_SECONDS[0]
            pessimistic += CATALOG_SECONDS[1]
        main_cost = max(costs, key=_cost_rank) if costs else CATALOG
        out.append(
            {
                "lock": lock,
                "blocks": blocks(lock),
                "cost": main_cost,
                "cost_label": COST_LABELS.get(main_cost, main_cost),
                "bytes": bytes_pessimistic,
                "bytes_typical": bytes_typical,
                "tables": sorted(set(tables)),
                "typical_s": round(typical, 3),
                "pessimistic_s": round(pessimistic, 3),
            }
        )
        total_typical += typical
        total_pessimistic += pessimistic
    totals = {
        "typical_s": round(total_typical, 3),
        "pessimistic_s": round(total_pessimistic, 3),
        "throughputs": {cost: t.as_json() for cost, t in throughputs.items()},
        "sizes": {
            name: size.as_json() for name, size in sizes.items() if name in {t for e in out for t in e["tables"]}
        },
    }
    return out, totals


def _rank(lock: str) -> int:
    from deployments.statements.parse import _LOCK_RANK

    return _LOCK_RANK.get(lock, 0)


def _cost_rank(cost: str) -> int:
    return {CATALOG: 0, DATA_CHANGE: 1, SCAN: 2, INDEX_BUILD: 3, REWRITE: 4}.get(cost, 0)


def basis_sentence(throughputs: dict[str, Any]) -> str:
    """What the throughputs come from, for the page: the estimate is only as good as that."""
    bases = {t["basis"] if isinstance(t, dict) else t.basis for t in throughputs.values()}
    parts = []
    if "target" in bases:
        parts.append("calibrated on this target's past executions")
    if "rehearsal" in bases:
        parts.append("measured on the rehearsal server (this target has no history yet for some kinds of work)")
    if "guess" in bases:
        parts.append("built-in guesses where nothing was measured")
    return "; ".join(parts) or "nothing to estimate"


# --- measuring on the rehearsal server ----------------------------------------------------------


def measure_on_server(dsn: str, *, rows: int = CALIBRATION_ROWS) -> dict[str, tuple[int, float]]:
    """``{cost: (bytes, seconds)}``: a table of ``rows`` rows rewritten, indexed, scanned and updated
    in a scratch schema on the server at ``dsn`` (the rehearsal server, never a target), then dropped."""
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="lifetime-calibration")
    schema = f"lifetime_calibration_{int(time.time() * 1000) % 10**9}"
    results: dict[str, tuple[int, float]] = {}
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
            table = pgsql.SQL("{}.t").format(pgsql.Identifier(schema))
            cursor.execute(
                pgsql.SQL(
                    "CREATE TABLE {} AS SELECT g AS id, (g::bigint * 7919) %% 100003 AS a, md5(g::text) || md5((g + 1)::text) AS b,"
                    " (g %% 10000)::numeric(12,2) AS c, now() - g * interval '1 second' AS d"
                    " FROM generate_series(1, %s) g"
                ).format(table),
                [rows],
            )
            cursor.execute(pgsql.SQL("VACUUM ANALYZE {}").format(table))

            def heap() -> int:
                cursor.execute(
                    "select pg_relation_size(%s::regclass), pg_total_relation_size(%s::regclass)",
                    [
                        f"{schema}.t",
                        f"{schema}.t",
                    ],
                )
                return cursor.fetchone()

            def timed(statement: pgsql.Composable) -> float:
                started = time.perf_counter()
                cursor.execute(statement)
                return time.perf_counter() - started

            heap_bytes, _ = heap()
            results[INDEX_BUILD] = (heap_bytes, timed(pgsql.SQL("CREATE INDEX ON {} (a)").format(table)))
            heap_bytes, total_bytes = heap()
            results[REWRITE] = (
                total_bytes,
                timed(pgsql.SQL("ALTER TABLE {} ALTER COLUMN c TYPE numeric(14,4)").format(table)),
            )
            heap_bytes, _ = heap()
            results[SCAN] = (heap_bytes, timed(pgsql.SQL("ALTER TABLE {} ADD CHECK (a >= 0)").format(table)))
            results[DATA_CHANGE] = (heap_bytes, timed(pgsql.SQL("UPDATE {} SET a = a + 1").format(table)))
    finally:
        try:
            with conn.cursor() as cursor:
                cursor.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(schema)))
        finally:
            conn.close()
    return results
