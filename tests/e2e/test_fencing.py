"""The console's database drops the stage worker's heartbeat connection during a long Continue: the
heartbeat reconnects and keeps its lease, the reaper never starts a second attempt, the plan
finishes successful and its script ran once."""

from __future__ import annotations

import time

import psycopg2
import pytest
from django.db import connection

from core.actors import Actor
from deployments.models import DeploymentPlan, PlanState, Stage, StageState
from deployments.plans import services as plans
from deployments.stages.lease import application_name
from deployments.state import machine
from tests.e2e.conftest import table_exists
from tests.processes import console_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _applied_scripts(env) -> list[tuple]:
    conn = psycopg2.connect(env.app_db_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("select application, script from lifetime_meta.applied_scripts order by 1, 2")
            return cur.fetchall()
    finally:
        conn.close()


def _terminate_lease_connection(stage: Stage) -> int:
    """pg_terminate_backend of this worker's lease connection only (by pid and application name)."""
    stage.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND application_name = %s",
            [stage.lease_pid, application_name(stage.pk)],
        )
        rows = cursor.fetchall()
    assert len(rows) == 1 and rows[0][1], f"lease connection of stage {stage.pk} not found"
    return rows[0][0]


def test_the_heartbeat_connection_terminated_during_a_long_continue_leaves_one_attempt_that_succeeds(engine):
    engine.start_worker()
    engine.start_beat()
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    scripts_before = _applied_scripts(prod)

    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    # A slow statement keeps Continue in its SQL far longer than the reaper's stale delay (5 s here).
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
    stage = plan.stages.get(kind="continue")
    first = _terminate_lease_connection(stage)
    # Twice, well past the stale delay: a heartbeat that stopped for good would be reaped by now.
    time.sleep(8)
    stage.refresh_from_db()
    assert stage.status == StageState.RUNNING and stage.lease_pid != first
    _terminate_lease_connection(stage)

    plan = engine.wait(plan, *machine.FINAL, timeout_s=90)
    assert plan.state in {PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS}, plan.state
    stages = list(plan.stages.filter(kind="continue"))
    assert [(s.attempt, s.status) for s in stages] == [(1, StageState.SUCCEEDED)]
    assert "stopped answering" not in "\n".join(plan.log_lines.values_list("message", flat=True))
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert engine.running("Production") == {"hr_core": "1.1.0"}
    assert table_exists(prod, "hr_core", "payslip")
    after = _applied_scripts(prod)
    assert len(after) == len(set(after)) == len(scripts_before) + 1
    assert engine.worker.log().count("reconnected to the database") >= 2


WORKER_APP = "fencing stage worker"


def test_every_console_connection_of_the_worker_terminated_hands_continue_to_one_second_attempt(engine):
    """Its Django connection too, not only the lease's: the attempt cannot tell whether its last
    console write committed, so it stops (its lease goes with it) and the reaper's second attempt,
    which reads everything again from the databases, finishes the plan. Never both at once, the
    script once."""
    base = console_env(engine.settings, console_url=engine.console_url)["DATABASE_URL"]
    engine.worker_env_extra["DATABASE_URL"] = f"{base}?application_name={WORKER_APP.replace(' ', '+')}"
    engine.start_worker()
    engine.start_beat()
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    scripts_before = _applied_scripts(prod)
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    sql = plan.generated_sql.get()
    statements = list(sql.statements)
    statements.insert(
        1, {"sql": "SELECT pg_sleep(6)", "kind": "script", "source": "sql/slow.sql", "flags": [], "line": 1}
    )
    type(sql).objects.filter(pk=sql.pk).update(statements=statements)

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    deadline = time.monotonic() + 60
    while DeploymentPlan.objects.get(pk=plan.pk).point_of_no_return_at is None:
        assert time.monotonic() < deadline, "Continue never reached its SQL"
        time.sleep(0.1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database()"
            " AND (application_name = %s OR application_name LIKE 'lifetime stage %% lease')",
            [WORKER_APP],
        )
        assert cursor.fetchone()[0] >= 2

    plan = engine.wait(plan, *machine.FINAL, timeout_s=120)
    assert plan.state in {PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS}, plan.state
    stages = list(plan.stages.filter(kind="continue").order_by("attempt"))
    assert [(s.attempt, s.status) for s in stages] == [(1, StageState.ERRORED), (2, StageState.SUCCEEDED)]
    assert "stopped answering" in stages[0].explanation
    # Attempt 2 started only once attempt 1 had ended: the first one's last heartbeat is before it.
    assert stages[0].heartbeat_at <= stages[1].started_at
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert engine.running("Production") == {"hr_core": "1.1.0"}
    after = _applied_scripts(prod)
    assert len(after) == len(set(after)) == len(scripts_before) + 1
