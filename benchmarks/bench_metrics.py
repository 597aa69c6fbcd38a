"""What a Prometheus scrape of /metrics costs with a long history: queries and milliseconds.

    LIFETIME_DEV=true REDIS_URL=redis://127.0.0.1:6379/4 .venv/bin/python benchmarks/bench_metrics.py [--plans 20000]

Uses its own database (``lifetime_metrics_bench`` unless BENCH_DATABASE_URL says otherwise). 50
plans go through Prepare and Continue with the test suite's PlanDriver (the services, the state
moves, the step log); the history is then grown to ``--plans`` plans by copying those plans with
their stages and steps in SQL (same states, same durations), kept for the next run. Prints the
queries per scrape and p50/p95 of 30 scrapes through Django's test client, as a Markdown row for
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LIFETIME_DEV", "true")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifetime_metrics_bench"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
os.environ.setdefault("ARTIFACT_ROOT", str(Path(tempfile.gettempdir()) / "lifetime-bench-artifacts"))
subprocess.run([sys.executable, str(ROOT / "scripts" / "ensure_database.py")], check=True)

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from core.actors import Actor  # noqa: E402
from deployments.catalog import services as catalog  # noqa: E402
from deployments.models import ApplicationVersion, DeploymentPlan  # noqa: E402
from deployments.status import metrics  # noqa: E402
from environments import services as env_services  # noqa: E402
from environments.models import AccessLevel, Environment  # noqa: E402
from tests.catalog.conftest import example_bundle  # noqa: E402
from tests.status.drive import PlanDriver, new_plan  # noqa: E402

SEED_PLANS = 50


def seed(target_plans: int) -> None:
    call_command("migrate", verbosity=0)
    if DeploymentPlan.objects.count() >= target_plans:
        return
    admin_user = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "admin@example.com", "bench-password-1"
    )
    admin = Actor.person(admin_user)
    import datetime as dt

    envs = {}
    for order, name in enumerate(["Test", "Production"], start=1):
        envs[name] = Environment.objects.filter(name=name).first() or env_services.save_environment(
            actor=admin,
            data={
                "name": name,
                "order": order,
                "kind": name,
                "two_stage_deployments": name == "Production",
                "window_days": list(range(7)),
                "window_start": dt.time(2, 0),
                "window_minutes": 120,
                "window_timezone": "UTC",
            },
        )
        for n in range(1, 9):
            if not envs[name].frontends.filter(name=f"fe{n}").exists():
                env_services.save_frontend(
                    actor=admin,
                    environment=envs[name],
                    data={"name": f"fe{n}", "releases_root": f"/srv/bench/{name.lower()}/fe{n}", "enabled": True},
                )
        env_services.set_access(actor=admin, user=admin_user, environment=envs[name], level=AccessLevel.DEPLOY)
    versions = [
        ApplicationVersion.objects.filter(application__name=app, version="1.0.0").first()
        or catalog.register_bundle(data=example_bundle(app, "1.0.0"), actor=admin)
        for app in ("hr_core", "leave_portal")
    ]
    if not DeploymentPlan.objects.exists():
        for _ in range(SEED_PLANS):
            plan = new_plan(actor=admin_user, source=envs["Test"], target=envs["Production"], versions=versions)
            driver = PlanDriver(plan, actor=admin_user)
            driver.prepare()
            driver.continue_all()
    # Grow the history by copying the plans driven above, with their stages and steps (same states,
    # same durations): the rows a long history holds, without driving each one.
    with connection.cursor() as cursor:
        while True:
            cursor.execute("select count(*) from deployments_deploymentplan")
            (count,) = cursor.fetchone()
            if count >= target_plans:
                break
            batch = min(count, target_plans - count)
            cursor.execute(
                """
                with source as (
                    select * from deployments_deploymentplan order by id limit %s
                ), plan_copy as (
                    insert into deployments_deploymentplan
                        (key, source_id, target_id, notes, state, created_at, created_by_id, saved_at, started_at,
                         started_by_id, prepared_at, continued_at, continued_by_id, aborted_at, aborted_by_id,
                         finished_at, prepared_snapshot, point_of_no_return_at, continue_scheduled_at,
                         continue_scheduled_by_id, log_seq)
                    select gen_random_uuid(), source_id, target_id, notes || ' #' || id, state, created_at,
                        created_by_id, saved_at, started_at, started_by_id, prepared_at, continued_at,
                        continued_by_id, aborted_at, aborted_by_id, finished_at, prepared_snapshot,
                        point_of_no_return_at, continue_scheduled_at, continue_scheduled_by_id, 0
                    from source order by id
                    returning id
                ), pairs as (
                    select s.id as old_id, c.id as new_id
                    from (select id, row_number() over (order by id) as n from source) s
                    join (select id, row_number() over (order by id) as n from plan_copy) c using (n)
                ), stage_copy as (
                    insert into deployments_stage
                        (plan_id, kind, status, attempt, requested_by_id, queued_at, started_at, finished_at,
                         heartbeat_at, task_id, worker, explanation, traceback)
                    select p.new_id, st.kind, st.status, st.attempt, st.requested_by_id, st.queued_at, st.started_at,
                        st.finished_at, st.heartbeat_at, '', st.worker, st.explanation, ''
                    from deployments_stage st join pairs p on p.old_id = st.plan_id
                    returning id, plan_id, kind
                )
                insert into deployments_step (stage_id, kind, subject, status, done, total, started_at, finished_at, detail)
                select sc.id, sp.kind, sp.subject, sp.status, sp.done, sp.total, sp.started_at, sp.finished_at, '{}'
                from stage_copy sc
                join pairs p on p.new_id = sc.plan_id
                join deployments_stage so on so.plan_id = p.old_id and so.kind = sc.kind
                join deployments_step sp on sp.stage_id = so.id
                """,
                [batch],
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    seed(args.plans)
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    client = Client()
    with connection.cursor() as cursor:
        cursor.execute("select (select count(*) from deployments_stage), (select count(*) from deployments_step)")
        stages, steps = cursor.fetchone()
    client.get("/metrics")  # warm: connections, caches
    response = client.get("/metrics")
    # Each query of one scrape, timed where the database driver runs it.
    queries: list[tuple[float, str]] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append(((time.perf_counter() - started) * 1000, sql))

    with connection.execute_wrapper(timed):
        metrics.render()
    for ms, sql in sorted(queries, reverse=True)[:3]:
        print(f"  {ms:6.1f} ms  {sql[:110]}")
    assert response.status_code == 200, response.content[:500]
    times = []
    for _ in range(args.scrapes):
        started = time.perf_counter()
        client.get("/metrics")
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    print(
        f"| {DeploymentPlan.objects.count():,} plans, {stages:,} stages, {steps:,} steps | {len(queries)} queries "
        f"| {statistics.median(times):.0f} ms | {p95:.0f} ms | {len(response.content):,} bytes |"
    )


if __name__ == "__main__":
    main()
