"""The SQL of the window on a big table: estimate against measured Continue, and who waits.

    LIFETIME_DEV=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/lifetime \\
        .venv/bin/python benchmarks/bench_window_sql.py [--rows 10000000] [--keep]

A throw-away "Production application database" on the server of DATABASE_URL holds
``bench.employee`` with ``--rows`` rows made by generate_series (about 1.3 GB at 10 million), and
``bench.department``. Four plans, each run three ways:

- **off**: Continue with "Build new indexes during Prepare" off: the console's executor
  (``steps.sql_window.execute_plan_sql``: one transaction, lock_timeout, savepoints) runs the
  plan's statements in the window;
- **on**: the option on: indexes built beforehand with CREATE INDEX CONCURRENTLY under the
  console's names (``stages.prepared_indexes``), Continue renames them; the foreign key is added
  NOT VALID in the window and validated after it;
- **django**: the same change as a Django migration (``manage.py migrate`` of a small Django
  project holding that table, written to a temporary folder) run in the window.

Plans: (a) two indexes, (b) a column with a default, (c) a column's type changed so that the
table is rewritten, (d) a foreign key. During each run a reader (``SELECT`` by primary key) and a
writer (``UPDATE`` by primary key) loop on the table in their own sessions; the longest single
query of each, less its usual latency, is how long it was blocked. The estimate (typical,
pessimistic) comes from ``steps.sql_estimate`` with the table's size read from the catalog and
throughputs measured on the rehearsal server (before any history) or calibrated from this run's
earlier executions on the target (history), as the console does. Nothing is written to the
console's database. The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")

import django  # noqa: E402

django.setup()

import psycopg2  # noqa: E402
from django.conf import settings  # noqa: E402

from deployments.stages import prepared_indexes  # noqa: E402
from deployments.statements.parse import classify_one  # noqa: E402
from deployments.steps import ListLog  # noqa: E402
from deployments.steps import sql_estimate as est  # noqa: E402
from deployments.steps.schema import read_schema_from_dsn  # noqa: E402
from deployments.steps.sql import GeneratedScript, SqlStatement  # noqa: E402
from deployments.steps.sql_window import PlannedScript, execute_plan_sql  # noqa: E402

DB = "lifetime_bench_window"
SCHEMA = "bench"
PLANS = {
    "a": (
        "two indexes",
        [
            "CREATE INDEX employee_last_name_idx ON bench.employee (last_name)",
            "CREATE INDEX employee_hired_idx ON bench.employee (hired_on)",
        ],
    ),
    "b": ("a column with a default", ["ALTER TABLE bench.employee ADD COLUMN active boolean NOT NULL DEFAULT true"]),
    "c": ("a type change (rewrite)", ["ALTER TABLE bench.employee ALTER COLUMN {salary} TYPE numeric(14,4)"]),
    "d": (
        "a foreign key",
        [
            "ALTER TABLE bench.employee ADD CONSTRAINT employee_dept_fk FOREIGN KEY (dept_id) "
            "REFERENCES bench.department (id)"
        ],
    ),
}
UNDO = {
    "a": ["DROP INDEX IF EXISTS bench.employee_last_name_idx", "DROP INDEX IF EXISTS bench.employee_hired_idx"],
    "b": ["ALTER TABLE bench.employee DROP COLUMN IF EXISTS active"],
    "c": [],  # each way changes its own salary column: no second rewrite to undo the first
    "d": ["ALTER TABLE bench.employee DROP CONSTRAINT IF EXISTS employee_dept_fk"],
}
SALARY_COLUMN = {"off": "salary_a", "again": "salary_d", "on": "salary_b", "django": "salary_c"}


def server_dsn(dbname: str) -> str:
    db = settings.DATABASES["default"]
    auth = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{dbname}"


def admin(sql: str, dbname: str = "postgres") -> None:
    conn = psycopg2.connect(server_dsn(dbname))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(sql)
    conn.close()


def build_database(rows: int) -> str:
    admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin(f"CREATE DATABASE {DB}")
    dsn = server_dsn(DB)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    started = time.perf_counter()
    with conn.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute("CREATE SCHEMA bench")
        cursor.execute("CREATE TABLE bench.department (id integer PRIMARY KEY, name text NOT NULL)")
        cursor.execute("INSERT INTO bench.department SELECT g, 'Department ' || g FROM generate_series(1, 500) g")
        cursor.execute(
            "CREATE TABLE bench.employee (id bigint NOT NULL, email varchar(254) NOT NULL, last_name varchar(100) "
            "NOT NULL, hired_on date NOT NULL, dept_id integer NOT NULL, salary_a numeric(10,2) NOT NULL, "
            "salary_b numeric(10,2) NOT NULL, salary_c numeric(10,2) NOT NULL, salary_d numeric(10,2) NOT NULL, "
            "note text)"
        )
        cursor.execute(
            "INSERT INTO bench.employee SELECT g, 'person' || g || '@example.com', 'Name' || (g::bigint * 7919 %% 1000003), "
            "date '2000-01-01' + (g %% 9000), 1 + g %% 500, (g %% 100000) / 7.0, (g %% 100000) / 7.0, "
            "(g %% 100000) / 7.0, (g %% 100000) / 7.0, CASE WHEN g %% 10 = 0 THEN 'a note about ' || g END FROM generate_series(1, %s) g",
            [rows],
        )
        cursor.execute("ALTER TABLE bench.employee ADD PRIMARY KEY (id)")
        cursor.execute("VACUUM ANALYZE bench.employee")
        cursor.execute("VACUUM ANALYZE bench.department")
        cursor.execute("select pg_total_relation_size('bench.employee'), pg_relation_size('bench.employee')")
        total, heap = cursor.fetchone()
    conn.close()
    print(
        f"built bench.employee: {rows:,} rows, heap {heap / 1e9:.2f} GB, with indexes {total / 1e9:.2f} GB "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return dsn


class Probe(threading.Thread):
    """A reader or a writer looping on the table by primary key; the longest query is kept."""

    def __init__(self, dsn: str, kind: str, rows: int) -> None:
        super().__init__(daemon=True)
        self.dsn, self.kind, self.rows = dsn, kind, rows
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        sql = (
            "SELECT email FROM bench.employee WHERE id = %s"
            if self.kind == "reader"
            else "UPDATE bench.employee SET note = note WHERE id = %s"
        )
        n = 0
        with conn.cursor() as cursor:
            while not self.stop.is_set():
                n += 1
                started = time.perf_counter()
                cursor.execute(sql, [1 + (n * 104729) % self.rows])
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.01)
        conn.close()

    def blocked(self) -> float:
        if not self.latencies:
            return 0.0
        return max(0.0, max(self.latencies) - statistics.median(self.latencies))


def with_probes(dsn: str, rows: int, action) -> tuple[float, float, float]:
    probes = [Probe(dsn, "reader", rows), Probe(dsn, "writer", rows)]
    for probe in probes:
        probe.start()
    time.sleep(0.3)
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    time.sleep(0.3)
    for probe in probes:
        probe.stop.set()
    for probe in probes:
        probe.join()
    return seconds, probes[0].blocked(), probes[1].blocked()


def statements_for(plan: str, way: str) -> list[dict]:
    out = []
    for sql in PLANS[plan][1]:
        sql = sql.replace("{salary}", SALARY_COLUMN[way])
        parsed = classify_one(sql, line=1)
        out.append(
            SqlStatement(
                sql=sql,
                kind="script",
                source=f"plan ({plan})",
                line=1,
                actions=tuple(a.as_json() for a in parsed.actions),
            ).as_json()
        )
    return out


def estimate(dsn: str, statements: list[dict], throughputs: dict) -> tuple[float, float]:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cursor:
        sizes = est.read_table_sizes(cursor, [SCHEMA])
    conn.close()
    per, totals = est.estimate_statements(
        statements, schema=SCHEMA, sizes=sizes, throughputs=throughputs, lock_timeout_s=5.0
    )
    for statement, e in zip(statements, per, strict=True):
        statement["estimate"] = e
    return totals["typical_s"], totals["pessimistic_s"]


def generated(dsn: str, statements: list[dict]) -> GeneratedScript:
    live = read_schema_from_dsn(dsn, schema=SCHEMA, application="bench")
    return GeneratedScript(
        application="bench",
        version="1",
        schema=SCHEMA,
        statements=tuple(SqlStatement.from_json(s) for s in statements),
        warnings=(),
        schema_fingerprint=live.fingerprint,
        schema_snapshot=live.description(),
    )


def continue_sql(dsn: str, script: GeneratedScript, replacements=None):
    return execute_plan_sql(
        dsn=dsn,
        where="Production (bench)",
        planned=[PlannedScript(script, replacements or {})],
        log=ListLog(),
        lock_timeout_ms=5000,
        statement_timeout_ms=3_600_000,
    )


def run_off(dsn: str, rows: int, plan: str, throughputs: dict, history: list, way: str = "off") -> dict:
    statements = statements_for(plan, way)
    typical, pessimistic = estimate(dsn, statements, throughputs)
    script = generated(dsn, statements)
    report = {}
    seconds, reader, writer = with_probes(dsn, rows, lambda: report.setdefault("r", continue_sql(dsn, script)))
    for run, statement in zip(report["r"].runs, statements, strict=True):
        e = statement["estimate"]
        if e["cost"] != "catalog" and e["bytes_typical"] >= est.MIN_CALIBRATION_BYTES:
            history.append((e["cost"], e["bytes_typical"], run.seconds))
    return {"estimate": (typical, pessimistic), "continue": seconds, "reader": reader, "writer": writer}


def run_on(dsn: str, rows: int, plan: str, throughputs: dict) -> dict:
    statements = statements_for(plan, "on")
    typical_before, _ = estimate(dsn, statements, throughputs)
    statements = prepared_indexes.defer_validation(statements)
    prepare_seconds = 0.0
    replacements = {}
    prepare_blocked = (0.0, 0.0)
    for index in prepared_indexes.candidates(statements):
        statement = statements[index]
        from pglast import parser as pg_parser
        from pglast.stream import RawStream

        node = pg_parser.parse_sql(statement["sql"])[0].stmt
        record = SimpleNamespace(
            schema=SCHEMA, table="employee", name=f"lifetime_prep_bench_{index}", final_name=node.idxname
        )
        node.idxname, node.concurrent = record.name, True
        sql = RawStream()(node)
        seconds, r, w = with_probes(
            dsn, rows, lambda sql=sql, record=record: prepared_indexes._build(dsn, sql, record, lock_timeout_ms=5000)
        )
        prepare_seconds += seconds
        prepare_blocked = (max(prepare_blocked[0], r), max(prepare_blocked[1], w))
        replacements[index] = SqlStatement(
            sql=f'ALTER INDEX bench."{record.name}" RENAME TO "{record.final_name}"',
            kind="rename_prepared_index",
            source=statement["source"],
            line=1,
        )
        statement["estimate"] = {**statement["estimate"], "cost": "catalog", "typical_s": 0.005, "pessimistic_s": 0.05}
    typical = sum(s["estimate"]["typical_s"] for s in statements)
    pessimistic = sum(s["estimate"]["pessimistic_s"] for s in statements)
    script = generated(dsn, statements)
    seconds, reader, writer = with_probes(dsn, rows, lambda: continue_sql(dsn, script, replacements))
    target = SimpleNamespace(app_db_dsn=lambda: dsn, sql_lock_timeout_ms=5000)
    after, after_reader, after_writer = with_probes(
        dsn,
        rows,
        lambda: prepared_indexes.validate_deferred(target=target, statements=statements, schema=SCHEMA, log=ListLog()),
    )
    return {
        "estimate": (typical, pessimistic),
        "estimate_off": typical_before,
        "prepare": prepare_seconds,
        "prepare_blocked": prepare_blocked,
        "continue": seconds,
        "reader": reader,
        "writer": writer,
        "after": after if any(s.get("validate_after") for s in statements) else 0.0,
        "after_blocked": (after_reader, after_writer),
    }


def write_django_project(folder: Path, dsn: str) -> None:
    """A small Django project whose app holds bench.employee, with one migration per plan."""
    (folder / "hr" / "migrations").mkdir(parents=True)
    (folder / "hr" / "__init__.py").write_text("")
    (folder / "hr" / "migrations" / "__init__.py").write_text("")
    (folder / "settings.py").write_text(
        textwrap.dedent(f"""
        import dj_database_url
        SECRET_KEY = "bench"
        INSTALLED_APPS = ["hr"]
        DATABASES = {{"default": dj_database_url.parse({dsn!r})}}
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        USE_TZ = True
        """)
    )
    (folder / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
        "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n"
    )
    fields = """[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("email", models.CharField(max_length=254)),
                ("last_name", models.CharField(max_length=100)),
                ("hired_on", models.DateField()),
                ("dept_id", models.IntegerField()),
                ("salary_a", models.DecimalField(max_digits=10, decimal_places=2)),
                ("salary_b", models.DecimalField(max_digits=10, decimal_places=2)),
                ("salary_c", models.DecimalField(max_digits=10, decimal_places=2)),
                ("salary_d", models.DecimalField(max_digits=10, decimal_places=2)),
                ("note", models.TextField(null=True)),
            ]"""
    migrations = {
        "0001_initial": f"""
            operations = [
                migrations.CreateModel("Department", [("id", models.IntegerField(primary_key=True, serialize=False)),
                    ("name", models.TextField())], options={{"db_table": 'bench"."department'}}),
                migrations.CreateModel("Employee", {fields}, options={{"db_table": 'bench"."employee'}}),
            ]""",
        "0002_a": """
            operations = [
                migrations.AddIndex("employee", models.Index(fields=["last_name"], name="employee_last_name_idx")),
                migrations.AddIndex("employee", models.Index(fields=["hired_on"], name="employee_hired_idx")),
            ]""",
        "0003_b": """
            operations = [migrations.AddField("employee", "active", models.BooleanField(default=True))]""",
        "0004_c": """
            operations = [migrations.AlterField("employee", "salary_c", models.DecimalField(max_digits=14,
                decimal_places=4))]""",
        "0005_d": """
            operations = [migrations.AlterField("employee", "dept_id", models.ForeignKey(
                "hr.department", on_delete=models.PROTECT, db_column="dept_id", db_index=False))]""",
    }
    previous = None
    for name, body in migrations.items():
        deps = f'[("hr", "{previous}")]' if previous else "[]"
        (folder / "hr" / "migrations" / f"{name}.py").write_text(
            "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
            f"    initial = {name == '0001_initial'}\n    dependencies = {deps}\n"
            + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
            + "\n"
        )
        previous = name


def run_django(folder: Path, dsn: str, rows: int, plan: str) -> dict:
    migration = {"a": "0002_a", "b": "0003_b", "c": "0004_c", "d": "0005_d"}[plan]
    env = {**os.environ, "PYTHONPATH": str(folder), "DJANGO_SETTINGS_MODULE": "settings"}

    def migrate() -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "hr", migration, "-v", "0"],
            cwd=folder,
            env=env,
            check=True,
        )

    seconds, reader, writer = with_probes(dsn, rows, migrate)
    return {"continue": seconds, "reader": reader, "writer": writer}


def undo(dsn: str, plan: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cursor:
        for statement in UNDO[plan]:
            cursor.execute(statement)
        cursor.execute("DROP INDEX IF EXISTS bench.employee_dept_id_idx")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    dsn = build_database(args.rows)
    print("measuring the rehearsal server ...")
    measured = est.measure_on_server(settings.REHEARSAL_DATABASE_URL, rows=settings.REHEARSAL_CALIBRATION_ROWS)
    rehearsal = {
        cost: est.Throughput(
            typical=b / s, pessimistic=b / s / est.PESSIMISTIC_SLOWDOWN / est.REHEARSAL_SLOWDOWN, basis="rehearsal"
        )
        for cost, (b, s) in measured.items()
    }
    print(
        "rehearsal server throughputs (MB/s): " + ", ".join(f"{c} {t.typical / 1e6:.0f}" for c, t in rehearsal.items())
    )
    history: list[tuple[str, int, float]] = []
    folder = Path(tempfile.mkdtemp(prefix="lifetime-bench-django-"))
    write_django_project(folder, dsn)
    env = {**os.environ, "PYTHONPATH": str(folder), "DJANGO_SETTINGS_MODULE": "settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "hr", "0001", "--fake", "-v", "0"], cwd=folder, env=env, check=True
    )
    results = []

    def calibrated() -> tuple[dict, set]:
        """Rehearsal measurements, replaced by this target's history wherever there is some."""
        throughputs = {**est.default_throughputs(), **rehearsal}
        for cost in list(throughputs):
            found = est.throughput_from_runs([(b, s) for c, b, s in history if c == cost], basis="target")
            if found is not None:
                throughputs[cost] = found
        return throughputs, {t.basis for t in throughputs.values()}

    for plan in PLANS:
        throughputs, _ = calibrated()
        first_statements = statements_for(plan, "off")
        estimate(dsn, first_statements, throughputs)
        costs = {s["estimate"]["cost"] for s in first_statements} - {"catalog"}
        basis = ",".join(sorted({throughputs[c].basis for c in costs})) or "catalog"
        off = run_off(dsn, args.rows, plan, throughputs, history)
        undo(dsn, plan)
        again = None
        if costs:
            # The same change once this target has a history: what the estimate is once calibrated.
            throughputs, _ = calibrated()
            again = run_off(dsn, args.rows, plan, throughputs, history, way="again")
            undo(dsn, plan)
        on = run_on(dsn, args.rows, plan, throughputs)
        undo(dsn, plan)
        dj = run_django(folder, dsn, args.rows, plan)
        results.append((plan, off, again, on, dj, basis))
        print(
            f"({plan}) {PLANS[plan][0]}: off {fmt(off)} | again {fmt(again) if again else '-'} | on {fmt(on)} | "
            f"django {fmt(dj)}",
            flush=True,
        )
    print()
    print(
        "| plan | way | estimate typical / pessimistic (s) | measured Continue (s) | measured / typical | "
        "reader blocked (s) | writer blocked (s) | at Prepare / after the window (s) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")

    def ratio(result: dict) -> str:
        typical = result["estimate"][0]
        return f"{result['continue'] / typical:.2f}" if typical >= 0.5 else "—"

    for plan, off, again, on, dj, basis in results:
        name = f"({plan}) {PLANS[plan][0]}"
        print(
            f"| {name} | option off, first time ({basis}) | {off['estimate'][0]:.2f} / {off['estimate'][1]:.2f} | "
            f"{off['continue']:.2f} | {ratio(off)} | {off['reader']:.2f} | {off['writer']:.2f} | — |"
        )
        if again:
            print(
                f"| {name} | option off, calibrated on this target | {again['estimate'][0]:.2f} / "
                f"{again['estimate'][1]:.2f} | {again['continue']:.2f} | {ratio(again)} | {again['reader']:.2f} | "
                f"{again['writer']:.2f} | — |"
            )
        extra = f"Prepare {on['prepare']:.1f} (reader {on['prepare_blocked'][0]:.2f}, writer {on['prepare_blocked'][1]:.2f})"
        if on["after"]:
            extra += f"; validated after the window in {on['after']:.1f} (writer {on['after_blocked'][1]:.2f})"
        print(
            f"| {name} | option on | {on['estimate'][0]:.2f} / {on['estimate'][1]:.2f} | {on['continue']:.2f} | — | "
            f"{on['reader']:.2f} | {on['writer']:.2f} | {extra} |"
        )
        print(
            f"| {name} | Django migrate | — | {dj['continue']:.2f} | — | {dj['reader']:.2f} | {dj['writer']:.2f} | — |"
        )
    if not args.keep:
        admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def fmt(result: dict) -> str:
    est_part = f"est {result['estimate'][0]:.1f}/{result['estimate'][1]:.1f} s, " if "estimate" in result else ""
    return (
        f"{est_part}took {result['continue']:.2f} s, reader {result['reader']:.2f} s, writer {result['writer']:.2f} s"
    )


if __name__ == "__main__":
    main()
