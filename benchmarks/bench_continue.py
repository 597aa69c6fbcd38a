"""Continue between the click and its first SQL statement, for plans of 1 and 20 applications.

    LIFETIME_DEV=true .venv/bin/python benchmarks/bench_continue.py [--rounds 40] [--sizes 1,20]

What Continue does before it changes the target, in the stage worker's order: check that the plan
still holds (the target's application database asked who it is and every application's schema,
the running versions, the front-ends), then open the plan's transaction, take its locks and check
the fingerprints again, up to the moment the first statement would be sent. The hook that marks the
point of no return raises instead, so the transaction rolls back and every round sees the same
prepared plan. The floor, measured in the same run: one connection to the target and one catalog
read of all the plan's schemas. The queue between the click and the stage worker is not in these
figures (a Celery round trip, ~1.5 ms on this machine). Uses its own console database
(``lifetime_continue_bench`` unless BENCH_DATABASE_URL says otherwise) and throw-away application
databases on the same server (each owned by a role of its own), dropped at the end; the plans are prepared with the console's own
steps (SQL generated and rehearsed on the rehearsal server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("LIFETIME_DEV", "true")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifetime_continue_bench"
)
os.environ.setdefault("REHEARSAL_DATABASE_URL", "postgres://postgres@127.0.0.1:54329/postgres")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
os.environ.setdefault("ARTIFACT_ROOT", str(Path(tempfile.gettempdir()) / "lifetime-bench-artifacts"))
subprocess.run([sys.executable, str(ROOT / "scripts" / "ensure_database.py")], check=True)

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from report import p95, row  # noqa: E402

from core.actors import Actor  # noqa: E402
from deployments.catalog import services as catalog  # noqa: E402
from deployments.models import GeneratedSql, OperationKind, PlanState  # noqa: E402
from deployments.plans import services as plans  # noqa: E402
from deployments.stages import engine  # noqa: E402
from deployments.stages.log import PlanStepLog  # noqa: E402
from deployments.stages.validity import check_still_valid  # noqa: E402
from deployments.state import moves  # noqa: E402
from deployments.steps.schema import connect, read_live_schema  # noqa: E402
from environments import services as env_services  # noqa: E402
from environments.databases import IDENTITY_QUERY  # noqa: E402
from environments.models import Environment  # noqa: E402
from tests.conftest import AppDatabases  # noqa: E402
from tests.deployments.many_applications import small_application_bundle  # noqa: E402

S = PlanState
SYSTEM = Actor.system("bench")
TARGETS_MS = {1: 60, 20: 80}


class Reached(Exception):
    """The first statement is next: stop here (the transaction rolls back)."""


def prepared_plan(size: int, actor: Actor, databases: AppDatabases):
    """A plan of ``size`` applications to a two-stage environment, prepared (SQL generated and
    rehearsed) and moved to Continue, as the stage worker has it before its check."""
    run = uuid.uuid4().hex[:6]
    last = Environment.objects.order_by("-order").values_list("order", flat=True).first() or 0
    envs = []
    for order, two_stage in ((1, False), (2, True)):
        envs.append(
            env_services.save_environment(
                actor=actor,
                data={
                    "name": f"Bench {run} {order}",
                    "order": last + order,
                    "kind": "Production" if two_stage else "Development",
                    "two_stage_deployments": two_stage,
                    "window_days": [],
                    "window_start": None,
                    "window_minutes": None,
                    "window_timezone": "UTC",
                    "prepared_plan_ttl_hours": 96,
                },
                app_db_dsn=databases.create("ltbench"),
            )
        )
    source, target = envs
    # A fresh user object: rights are cached on it, and these environments are new.
    actor = Actor.person(User.objects.get(pk=actor.user.pk))
    versions = [
        catalog.register_bundle(data=small_application_bundle(f"b{run}_{n:02d}"), actor=actor) for n in range(size)
    ]
    plan = plans.create_plan(
        actor=actor, source=source, target=target, operations=[plans.Operation(v.application, v) for v in versions]
    )
    moves.move_plan(plan, expected={S.SAVED}, to=S.PREPARING, actor=SYSTEM, reason="Prepare Deployment")
    fingerprints = {}
    for version in versions:
        generated = engine.generate_and_rehearse(target, version, PlanStepLog(plan))
        GeneratedSql.objects.create(
            plan=plan, application=version.application, version=version, **generated.model_fields
        )
        fingerprints[version.application.name] = generated.fingerprint
    moves.move_plan(
        plan,
        expected={S.PREPARING},
        to=S.PREPARED,
        actor=SYSTEM,
        reason="Prepared",
        fields={"prepared_snapshot": {"running": {}, "frontends": [], "fingerprints": fingerprints}},
    )
    moves.move_plan(plan, expected={S.PREPARED}, to=S.CONTINUING, actor=SYSTEM, reason="Continue")
    return plan


def to_first_statement(plan_id: int) -> float:
    """Continue's work before its first statement, as run_continue does it; milliseconds."""
    from deployments.models import DeploymentPlan

    started = time.perf_counter()
    plan = DeploymentPlan.objects.select_related("target").get(pk=plan_id)
    operations = list(plan.operations.select_related("application", "version"))
    deploys = engine.order_by_dependencies(
        [op for op in operations if op.kind == OperationKind.DEPLOY and op.version is not None]
    )
    problems = check_still_valid(plan)
    if problems:
        raise SystemExit(f"the prepared plan does not hold: {problems}")
    generated = {g.application_id: g for g in GeneratedSql.objects.filter(plan=plan)}
    reached = []

    def first_statement() -> None:
        reached.append(time.perf_counter())
        raise Reached()

    try:
        engine.execute_plan_sql(
            plan,
            plan.target,
            deploys,
            generated,
            PlanStepLog(plan),
            resumed=False,
            before_first_statement=first_statement,
        )
    except Reached:
        pass
    return (reached[0] - started) * 1000


def floor(plan_id: int) -> float:
    """One connection to the target, who it is, one catalog read of all the plan's schemas."""
    from deployments.models import DeploymentPlan

    plan = DeploymentPlan.objects.select_related("target").get(pk=plan_id)
    names = list(plan.operations.values_list("application__name", flat=True))
    dsn = plan.target.app_db_dsn()
    started = time.perf_counter()
    conn = connect(dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute(IDENTITY_QUERY)
            cursor.fetchone()
            try:
                from deployments.steps.schema import read_live_schemas

                read_live_schemas(cursor, [(name, name) for name in names])
            except ImportError:  # the code before one catalog read for all: its floor is the same query per schema
                for name in names:
                    read_live_schema(cursor, schema=name, application=name)
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--sizes", default="1,20")
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "bench@example.com", uuid.uuid4().hex
    )
    actor = Actor.person(admin)
    databases = AppDatabases()
    try:
        print("| applications | median ms | p95 ms | max ms | floor median ms | floor p95 ms |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size in (int(n) for n in options.sizes.split(",")):
            plan = prepared_plan(size, actor, databases)
            for _ in range(3):  # warm-up: imports, first connections, caches
                to_first_statement(plan.pk), floor(plan.pk)
            timings, floors = [], []
            for _ in range(options.rounds):
                timings.append(to_first_statement(plan.pk))
                floors.append(floor(plan.pk))
            print(
                f"| {size} | {statistics.median(timings):.1f} | {p95(timings):.1f} | {max(timings):.1f} "
                f"| {statistics.median(floors):.1f} | {p95(floors):.1f} |",
                flush=True,
            )
            row(
                f"Continue, checks to first SQL statement, {size} application(s), p95",
                measured=p95(timings),
                floor=p95(floors),
                max_value=TARGETS_MS.get(size),
                note="floor: one connection and one catalog read of all schemas",
            )
            moves.move_plan(plan, expected={S.CONTINUING}, to=S.ABORTING, actor=SYSTEM, reason="benchmark done")
    finally:
        databases.drop_all()


if __name__ == "__main__":
    main()
