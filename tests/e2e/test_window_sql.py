"""The SQL of the window with the real engine (a Celery stage worker, agents, front-ends):
one transaction for the plan's SQL across applications, and indexes built during Prepare."""

from __future__ import annotations

import time

import psycopg2
import pytest

from core.actors import Actor
from deployments.models import PlanState, PreparedIndex
from deployments.plans import services as plans
from environments import services as env_services
from tests.e2e.conftest import schema_columns, table_exists

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _query(env, sql: str, params=None):
    conn = psycopg2.connect(env.app_db_dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


@pytest.fixture
def production(engine):
    engine.start_worker()
    engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy(
        "Development", "Production", [engine.version("hr_core", "1.0.0"), engine.version("leave_portal", "1.0.0")]
    )
    prod = engine.environments["Production"]
    _query(
        prod,
        "insert into hr_core.employee (department_id, first_name, last_name, email) "
        "select 1, 'F', 'L' || g, 'e' || g || '@example.com' from generate_series(1, 20000) g",
    )
    return engine


def _option_on(engine):
    prod = engine.environments["Production"]
    data = {name: getattr(prod, name) for name in env_services.ENVIRONMENT_FIELDS}
    data["build_indexes_during_prepare"] = True
    engine.environments["Production"] = env_services.save_environment(
        actor=Actor.system("test"), environment=prod, data=data
    )
    return engine.environments["Production"]


def test_a_failing_second_application_takes_back_the_first_ones_changes(production):
    engine = production
    prod = engine.environments["Production"]
    plan = engine.plan(
        "Development", "Production", [engine.version("hr_core", "1.1.0"), engine.version("leave_portal", "1.1.0")]
    )
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    hr_before, leave_before = schema_columns(prod, "hr_core"), schema_columns(prod, "leave_portal")
    # Injected fault: a statement of leave_portal's script that fails on the target (as one failing
    # on real data the rehearsal's empty copy could not see would).
    leave = plan.generated_sql.get(application__name="leave_portal")
    statements = [*leave.statements]
    statements.insert(
        len(statements) - 1,
        {"sql": "SELECT 1 / 0", "kind": "script", "source": "sql/001_default_policy.sql", "flags": [], "line": 9},
    )
    type(leave).objects.filter(pk=leave.pk).update(statements=statements)

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.FINISHED_WITH_ERRORS)

    # hr_core's statements ran first, in the same transaction: rolled back with leave_portal's.
    assert schema_columns(prod, "hr_core") == hr_before and schema_columns(prod, "leave_portal") == leave_before
    assert not table_exists(prod, "hr_core", "payslip")
    assert engine.running("Production") == {"hr_core": "1.0.0", "leave_portal": "1.0.0"}
    log = "\n".join(plan.log_lines.values_list("message", flat=True))
    assert "(leave_portal: sql/001_default_policy.sql, line 9): division by zero" in log
    assert "nothing was applied: the plan's one transaction was rolled back, including the" in log
    assert "hr_core's" in log


def test_indexes_built_during_prepare_are_renamed_by_continue(production):
    engine = production
    prod = _option_on(engine)
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    record = PreparedIndex.objects.get(plan=plan)
    assert record.state == PreparedIndex.State.READY
    assert _query(prod, "select to_regclass(%s) is not null", [f"hr_core.{record.name}"]) == [(True,)]
    assert plan.log_lines.filter(message__contains="concurrently ahead of the window").exists()

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)
    assert _query(prod, "select to_regclass('hr_core.employee_last_name_idx') is not null") == [(True,)]
    assert _query(prod, "select count(*) from pg_class where relname like 'lifetime_prep_%'") == [(0,)]
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]


def test_an_aborted_plan_has_its_prepared_indexes_dropped_by_the_worker(production):
    engine = production
    prod = _option_on(engine)
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    record = PreparedIndex.objects.get(plan=plan)
    plans.abort_plan(actor=Actor.person(engine.release), plan=plan)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if record.state == PreparedIndex.State.DROPPED:
            break
        time.sleep(0.2)
    assert record.state == PreparedIndex.State.DROPPED
    assert _query(prod, "select to_regclass(%s)", [f"hr_core.{record.name}"]) == [(None,)]
