"""A stage worker killed with SIGKILL mid-Continue: the plan still reaches a final status, every
front-end runs the same version, and the SQL is applied at most once."""

from __future__ import annotations

import time

import psycopg2
import pytest

from core.actors import Actor
from deployments.models import DeploymentPlan, PlanState, StageState
from deployments.plans import services as plans
from deployments.state import machine
from tests.e2e.conftest import table_exists

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _applied_scripts(env) -> list[tuple]:
    conn = psycopg2.connect(env.app_db_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("select application, script from lifetime_meta.applied_scripts order by 1, 2")
            return cur.fetchall()
    finally:
        conn.close()


def test_worker_killed_during_continue_is_resumed_and_the_environment_ends_consistent(engine):
    engine.start_worker()
    engine.start_beat()
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    scripts_before = _applied_scripts(prod)

    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    # A slow statement in the middle of the SQL keeps Continue busy past its point of no return.
    sql = plan.generated_sql.get()
    statements = list(sql.statements)
    statements.insert(
        1, {"sql": "SELECT pg_sleep(30)", "kind": "script", "source": "sql/slow.sql", "flags": [], "line": 1}
    )
    type(sql).objects.filter(pk=sql.pk).update(statements=statements)

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    deadline = time.monotonic() + 60
    while DeploymentPlan.objects.get(pk=plan.pk).point_of_no_return_at is None:
        assert time.monotonic() < deadline, "Continue never reached its SQL"
        time.sleep(0.1)
    time.sleep(0.5)
    engine.worker.kill()
    killed_at = time.monotonic()
    engine.start_worker()

    plan = engine.wait(plan, *machine.FINAL, timeout_s=60)
    assert time.monotonic() - killed_at < 60
    assert plan.state in {PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS}, plan.state
    stages = list(plan.stages.filter(kind="continue").order_by("attempt"))
    assert [s.status for s in stages] == [StageState.ERRORED, StageState.SUCCEEDED]
    assert "stopped answering" in stages[0].explanation
    answers = engine.answers("Production", "/hr_core")
    assert answers == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert table_exists(prod, "hr_core", "payslip")
    # Each hand-written script recorded once: 1.0.0's before, 1.1.0's once more.
    after = _applied_scripts(prod)
    assert len(after) == len(set(after)) == len(scripts_before) + 1
