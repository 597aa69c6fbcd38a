"""Status pages under many viewers: 10,000 plans in the history, a running plan with 2,000 log
lines still growing, 200 viewers polling every 2 s against gunicorn (lifetime/gunicorn_conf.py:
2 workers x 4 threads) on loopback, bounded in time. The viewers are wrk threads driven by
benchmarks/status_viewers.lua (``apt-get install wrk``), or locust with ``--tool locust``.

    LIFETIME_DEV=true REDIS_URL=redis://127.0.0.1:6379/4 .venv/bin/python benchmarks/bench_status_pages.py [--users 200 --seconds 60]

Uses its own database (``lifetime_status_bench`` unless BENCH_DATABASE_URL says otherwise),
seeded once through the project's services and kept for the next run. Prints p50/p95 per page,
the ramp apart from the steady state, errors and the share of 304 answers, as a Markdown table
for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LIFETIME_DEV", "true")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifetime_status_bench"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
os.environ.setdefault("ARTIFACT_ROOT", str(Path(tempfile.gettempdir()) / "lifetime-bench-artifacts"))
subprocess.run([sys.executable, str(ROOT / "scripts" / "ensure_database.py")], check=True)

import django  # noqa: E402

django.setup()

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from core.actors import Actor  # noqa: E402
from deployments.catalog import services as catalog  # noqa: E402
from deployments.models import ApplicationVersion, DeploymentPlan, PlanState, StageKind  # noqa: E402
from deployments.stages.log import PlanStepLog, append_log  # noqa: E402
from environments import services as env_services  # noqa: E402
from environments.models import AccessLevel, Environment  # noqa: E402
from tests.catalog.conftest import example_bundle  # noqa: E402
from tests.processes import BIN, free_port  # noqa: E402
from tests.status.drive import PlanDriver, fill_log, new_plan  # noqa: E402

HISTORY = 10_000
LOG_LINES = 2_000


def seed() -> DeploymentPlan:
    """Environments, two applications, 10,000 finished plans and one running plan: through the services."""
    admin_user = User.objects.filter(username="bench-admin").first()
    if admin_user is None:
        admin_user = User.objects.create_superuser("bench-admin", "admin@example.com", "bench-password-1")
    admin = Actor.person(admin_user)
    envs = {}
    for order, name in enumerate(["Development", "Test", "Production"], start=1):
        envs[name] = Environment.objects.filter(name=name).first() or env_services.save_environment(
            actor=admin,
            data={
                "name": name,
                "order": order,
                "kind": name,
                "two_stage_deployments": name == "Production",
                "window_days": list(range(7)) if name == "Production" else [],
                "window_start": dt.time(2, 0) if name == "Production" else None,
                "window_minutes": 120 if name == "Production" else None,
                "window_timezone": "UTC",
                "prepared_plan_ttl_hours": 96,
            },
        )
        if not envs[name].frontends.exists():
            for n in (1, 2):
                env_services.save_frontend(
                    actor=admin,
                    environment=envs[name],
                    data={"name": f"fe{n}", "releases_root": f"/tmp/bench/{name}/fe{n}", "enabled": True},
                )
    ops = User.objects.filter(username="bench-ops").first() or User.objects.create_user("bench-ops", password="x")
    release = User.objects.filter(username="bench-release").first() or User.objects.create_user(
        "bench-release", password="x"
    )
    for env in envs.values():
        env_services.set_access(actor=Actor.system("bench"), user=ops, environment=env, level=AccessLevel.VIEW)
        env_services.set_access(actor=Actor.system("bench"), user=release, environment=env, level=AccessLevel.DEPLOY)

    versions = list(ApplicationVersion.objects.filter(version="1.0.0").order_by("application__name"))
    if not versions:
        versions = [
            catalog.register_bundle(data=example_bundle(app, "1.0.0"), actor=admin)
            for app in ("hr_core", "leave_portal")
        ]
    done = DeploymentPlan.objects.exclude(state=PlanState.APPLYING).count()
    started = time.monotonic()
    for number in range(done, HISTORY):
        target = envs["Test"] if number % 3 else envs["Production"]
        source = envs["Development"] if target.name == "Test" else envs["Test"]
        d = PlanDriver(
            new_plan(
                actor=release,
                source=source,
                target=target,
                versions=versions[: 1 + number % 2],
                notes=f"release {number}",
            ),
            actor=release,
        )
        d.start()
        d.through_without_stages(
            PlanState.FINISHED_SUCCESSFUL if number % 10 else PlanState.FINISHED_WITH_WARNINGS, reason="Deployed"
        )
        if number % 1000 == 999:
            print(f"  {number + 1} plans ({time.monotonic() - started:.0f} s)", flush=True)
    running = DeploymentPlan.objects.filter(state=PlanState.APPLYING).first()
    if running is None:
        d = PlanDriver(
            new_plan(actor=release, source=envs["Test"], target=envs["Production"], versions=versions, notes="the one"),
            actor=release,
        )
        d.prepare()
        stage = d.continue_()
        d.execute_sql(stage, upto=2)
        fill_log(d.plan, LOG_LINES)
        running = d.plan
    return running


def session_for(username: str) -> str:
    user = User.objects.get(username=username)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def keep_writing(plan: DeploymentPlan, stop: threading.Event, every_s: float) -> int:
    """The running plan goes on: a log line and some step progress every ``every_s``."""
    step = plan.stages.filter(kind=StageKind.CONTINUE).last().steps.get(kind="execute_sql")
    written = 0
    while not stop.wait(every_s):
        written += 1
        append_log(plan, "info", f"statement batch {written} executed")
        PlanStepLog(plan, step).progress(min(step.total, 2 + written // 10), step.total)
    return written


def wait_until_up(port: int) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer /healthz")


def run_wrk(options: argparse.Namespace, port: int, viewer_env: dict[str, str]) -> None:
    """One wrk thread per viewer (its own connection and Lua state: its own cursor and ETag)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (or run with --tool locust)")
    done = subprocess.run(
        [
            wrk,
            "-t",
            str(options.users),
            "-c",
            str(options.users),
            "-d",
            f"{options.seconds}s",
            # wrk counts an answer slower than its timeout (2 s by default) as an error: keep the
            # slow ones in the latency figures instead.
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "benchmarks" / "status_viewers.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env={**os.environ, **viewer_env, "BENCH_RAMP_MS": str(int(options.ramp * 1000))},
        check=True,
        timeout=options.seconds + 60,
        capture_output=True,
        text=True,
    )
    print(done.stdout, done.stderr, flush=True)
    report_rows(done.stdout, options)


def report_rows(output: str, options: argparse.Namespace) -> None:
    """The benchmark table's rows from wrk's Markdown table: p95 of every request, and of the steady state."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import row

    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 6 or cells[0] not in ("all", "all (steady)"):
            continue
        row(
            f"status pages, p95 of {'every request' if cells[0] == 'all' else 'the steady state'}",
            measured=float(cells[5]),
            max_value=20,
            note=f"{options.users} viewers polling every 2 s, {float(cells[2]):.0f} req/s, {cells[3]} errors",
        )


def run_locust(options: argparse.Namespace, port: int, viewer_env: dict[str, str]) -> None:
    work = tempfile.mkdtemp(prefix="bench-status-")
    codes_file = Path(work) / "codes.json"
    subprocess.run(
        [
            str(BIN / "locust"),
            "-f",
            str(ROOT / "benchmarks" / "locustfile_status.py"),
            "--headless",
            "-u",
            str(options.users),
            "-r",
            str(max(1, round(options.users / max(options.ramp, 1)))),
            "-t",
            f"{options.seconds}s",
            "--host",
            f"http://127.0.0.1:{port}",
            "--csv",
            str(Path(work) / "stats"),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "5",
        ],
        env={**os.environ, **viewer_env, "BENCH_CODES_FILE": str(codes_file)},
        check=False,
        timeout=options.seconds + 120,
    )
    codes = json.loads(codes_file.read_text())
    print()
    print("| page | requests | errors | p50 ms | p95 ms | p99 ms | max ms | 304 share |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with open(Path(work) / "stats_stats.csv") as handle:
        for row in csv.DictReader(handle):
            name = row["Name"]
            total = int(row["Request Count"])
            not_modified = (
                sum(v for k, v in codes.items() if k.startswith(f"{name} 304"))
                if name != "Aggregated"
                else sum(v for k, v in codes.items() if k.endswith(" 304"))
            )
            share = f"{100 * not_modified / total:.0f}%" if total else "-"
            print(
                f"| {name} | {total} | {row['Failure Count']} | {row['50%']} | {row['95%']} | {row['99%']} | "
                f"{float(row['Max Response Time']):.0f} | {share} |"
            )
    print()
    print("status codes:", json.dumps(codes, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument(
        "--write-every", type=float, default=1.0, help="seconds between two log lines of the running plan"
    )
    parser.add_argument(
        "--ramp", type=float, default=10.0, help="seconds over which the viewers arrive (and load the page once)"
    )
    parser.add_argument("--tool", choices=["wrk", "locust"], default="wrk")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    print("seeding (kept for the next run)...", flush=True)
    plan = seed()
    # Statistics as autovacuum would have them on a database that lived: right after the seed the
    # planner still believes the plans table is empty and picks nested loops over 10,000 rows.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"{DeploymentPlan.objects.count()} plans; running plan {plan.key} with {plan.log_lines.count()} log lines")
    port = free_port()
    env = {
        **os.environ,
        "DB_CONN_MAX_AGE": "60",
        "WEB_WORKERS": str(options.workers),
        "WEB_THREADS": str(options.threads),
    }
    gunicorn = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "lifetime.wsgi",
            "-c",
            str(ROOT / "lifetime" / "gunicorn_conf.py"),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    stop = threading.Event()
    try:
        wait_until_up(port)
        writer = threading.Thread(target=keep_writing, args=(plan, stop, options.write_every), daemon=True)
        writer.start()
        viewer_env = {"BENCH_PLAN_KEY": str(plan.key), "BENCH_SESSION": session_for("bench-ops")}
        (run_wrk if options.tool == "wrk" else run_locust)(options, port, viewer_env)
    finally:
        stop.set()
        gunicorn.terminate()
        gunicorn.wait(timeout=20)


if __name__ == "__main__":
    main()
