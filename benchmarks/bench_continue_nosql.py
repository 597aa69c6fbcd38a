"""Continue of 1, 5 and 20 applications without SQL on 1, 4 and 8 front-ends, split into console, SQL and switch.

    LIFETIME_DEV=true .venv/bin/python benchmarks/bench_continue_nosql.py [--rounds 3] [--sizes 1,5,20] [--frontends 1,4,8]

The whole engine, really started (the end-to-end tests' fixtures: the console over HTTP, a Celery
stage worker, one agent and one front-end server per front-end, Redis, PostgreSQL, an application
database per environment). For each number of front-ends, a two-stage environment runs version
1.0.0 of 20 small applications (3 tables each); each round deploys a new version of the first 1, 5
or 20 of them with the same data model, so that Continue has no statement to run: Prepare, then
Continue, measured from the plan's ``continued_at`` (the click) to its ``finished_at``, split by
the Continue stage's own steps: SQL (``execute_sql``), switch (``switch``) and the console (the
rest: the click's own request, which checks the plan before it queues the stage, and the queue to
the stage worker, from ``continued_at`` to the stage's ``started_at``; the stage's check that the
plan still holds; the bookkeeping, and the clean-up of old releases after the switch).

The floor, measured in the same run: the task fan-out floor (one signed ping to each front-end's
queue, every answer collected, as ``bench_switch.py``) plus the catalog-read floor (one connection
to the target, who it is, one catalog read of the plan's schemas, as ``bench_continue.py``). The
target: the median Continue ≤ 3 × that floor. Runs as pytest on this file (``scripts/test.sh``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPLICATIONS = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1,5,20")
    parser.add_argument("--frontends", default="1,4,8")
    args = parser.parse_args()
    env = {
        **os.environ,
        "NOSQL_ROUNDS": str(args.rounds),
        "NOSQL_SIZES": args.sizes,
        "NOSQL_FRONTENDS": args.frontends,
    }
    return subprocess.call(
        [str(REPO / "scripts" / "test.sh"), str(Path(__file__).resolve()), "-p", "no:cacheprovider", "-q", "-s"],
        env=env,
        cwd=REPO,
    )


# --- the run itself (collected by pytest when given this file) ------------------------------------

if "NOSQL_ROUNDS" in os.environ:
    import pytest

    sys.path.insert(0, str(REPO / "benchmarks"))
    from report import row

    from core.actors import Actor
    from deployments.catalog import services as catalog
    from deployments.models import DeploymentPlan, GeneratedSql, PlanState, StageKind, StepKind
    from deployments.plans import services as plans
    from deployments.steps.schema import connect, read_live_schemas
    from environments import access
    from environments.agents import AgentCall, send, wait
    from environments.databases import IDENTITY_QUERY

    # The end-to-end tests' fixtures, used here.
    from tests.conftest import (  # noqa: F401
        admin_user,
        app_databases,
        django_db_setup,
        outbound_to_loopback,
        small_rehearsal_calibration,
    )
    from tests.deployments.many_applications import small_application_bundle
    from tests.e2e.conftest import engine  # noqa: F401

    pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
    DONE = (PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)

    def _name(n: int) -> str:
        return f"nosql_{n:02d}"

    def _fan_out_ms(frontends) -> float:
        started = time.perf_counter()
        wait([send(AgentCall(fe.row, "agent.ping", {}), expires_in_s=10) for fe in frontends], timeout_s=10)
        return (time.perf_counter() - started) * 1000

    def _catalog_ms(env, names: list[str]) -> float:
        started = time.perf_counter()
        conn = connect(env.app_db_dsn())
        try:
            with conn.cursor() as cursor:
                cursor.execute(IDENTITY_QUERY)
                cursor.fetchone()
                read_live_schemas(cursor, [(name, name) for name in names])
        finally:
            conn.close()
        return (time.perf_counter() - started) * 1000

    def _step_ms(stage, kind: str) -> float:
        """From the first step of ``kind`` starting to the last one ending (the switch's steps, one
        per front-end, run side by side)."""
        steps = [s for s in stage.steps.filter(kind=kind) if s.started_at and s.finished_at]
        if not steps:
            return 0.0
        return (max(s.finished_at for s in steps) - min(s.started_at for s in steps)).total_seconds() * 1000

    def test_continue_without_sql(engine):  # noqa: F811 - the fixture imported above
        rounds = int(os.environ["NOSQL_ROUNDS"])
        sizes = [int(n) for n in os.environ["NOSQL_SIZES"].split(",")]
        counts = [int(n) for n in os.environ["NOSQL_FRONTENDS"].split(",")]
        engine.start_worker()
        registrar = Actor.person(engine.hosts.actor)
        release = Actor.person(engine.release)
        first = [
            catalog.register_bundle(data=small_application_bundle(_name(n)), actor=registrar)
            for n in range(APPLICATIONS)
        ]
        print(
            "\n| front-ends | applications | Continue median ms | console ms | of which click + queue ms | check ms "
            "| after the switch ms | SQL ms | switch ms "
            "| fan-out floor ms | catalog floor ms | ratio |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        serial = 0
        for order, count in enumerate(counts, start=2):
            name = f"Production {count}"
            env = engine.environment(
                name, order=order, two_stage=True, frontends=count, app_db=engine.app_databases.create()
            )
            access.forget(engine.release)  # rights are kept on the user object: this environment is new
            engine.deploy("Development", name, first)
            for size in sizes:
                totals, queues, checks, afters, consoles, sqls, switches, fan_outs, catalogs = ([] for _ in range(9))
                for _ in range(rounds):
                    serial += 1
                    versions = [
                        catalog.register_bundle(
                            data=small_application_bundle(_name(n), f"1.0.{serial}"), actor=registrar
                        )
                        for n in range(size)
                    ]
                    plan = engine.plan("Development", name, versions)
                    plans.start_plan(actor=release, plan=plan)
                    plan = engine.wait(plan, PlanState.PREPARED, timeout_s=600)
                    statements = sum(len(g.statements) for g in GeneratedSql.objects.filter(plan=plan))
                    assert statements == 0, f"the plan has {statements} statements: not a Continue without SQL"
                    plans.continue_plan(actor=release, plan=plan)
                    plan = engine.wait(plan, *DONE, timeout_s=600)
                    plan = DeploymentPlan.objects.get(pk=plan.pk)
                    assert engine.running(name)[_name(0)] == f"1.0.{serial}"
                    stage = plan.stages.filter(kind=StageKind.CONTINUE).order_by("-id").first()
                    total = (plan.finished_at - plan.continued_at).total_seconds() * 1000
                    sql, switch = _step_ms(stage, StepKind.EXECUTE_SQL), _step_ms(stage, StepKind.SWITCH)
                    totals.append(total)
                    queues.append((stage.started_at - plan.continued_at).total_seconds() * 1000)
                    checks.append(_step_ms(stage, StepKind.CHECK))
                    switched = max(
                        (s.finished_at for s in stage.steps.filter(kind=StepKind.SWITCH) if s.finished_at),
                        default=plan.finished_at,
                    )
                    afters.append((plan.finished_at - switched).total_seconds() * 1000)
                    sqls.append(sql)
                    switches.append(switch)
                    consoles.append(total - sql - switch)
                    for _ in range(5):
                        fan_outs.append(_fan_out_ms(engine.frontends[name]))
                        catalogs.append(_catalog_ms(env, [_name(n) for n in range(size)]))
                med = statistics.median
                floor = med(fan_outs) + med(catalogs)
                print(
                    f"| {count} | {size} | {med(totals):.0f} | {med(consoles):.0f} | {med(queues):.0f} | {med(checks):.0f} "
                    f"| {med(afters):.0f} | {med(sqls):.0f} "
                    f"| {med(switches):.0f} | {med(fan_outs):.1f} | {med(catalogs):.1f} | {med(totals) / floor:.1f} |",
                    flush=True,
                )
                row(
                    f"Continue without SQL, {size} application(s), {count} front-end(s), median of {rounds}",
                    measured=med(totals),
                    floor=floor,
                    max_ratio=3,
                    note=f"console {med(consoles):.0f} ms (click + queue {med(queues):.0f} ms), SQL {med(sqls):.0f} ms, switch {med(switches):.0f} ms; "
                    "floor: a signed ping to each front-end + one catalog read",
                )


if __name__ == "__main__":
    sys.exit(main())
