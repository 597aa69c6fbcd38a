"""Prepare, Continue Later, Prepared, Continue — and Deploy Now — with the real engine."""

from __future__ import annotations

import pytest

from core.actors import Actor
from deployments.models import PlanState, StepKind
from deployments.plans import services as plans
from deployments.state import moves
from tests.e2e.conftest import schema_columns, table_exists

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def production(engine):
    """Production (two stages, two real front-ends) running HR Core 1.0.0 and Leave Portal 1.0.0."""
    engine.start_worker()
    engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    old = [engine.version("hr_core", "1.0.0"), engine.version("leave_portal", "1.0.0")]
    engine.deploy("Development", "Production", old)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    return engine


def test_two_stage_prepare_changes_nothing_and_continue_switches_every_frontend(production):
    engine = production
    prod = engine.environments["Production"]
    new = [engine.version("hr_core", "1.1.0"), engine.version("leave_portal", "1.1.0")]
    plan = engine.plan("Development", "Production", new)

    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.PREPARED)

    # Prepared: binaries on every front-end, nothing running changed.
    for fe in engine.frontends["Production"]:
        releases = {p.name for p in (fe.root / "releases" / "hr_core").iterdir()}
        assert any(name.startswith("1.1.0-") for name in releases), releases
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    assert engine.answers("Production", "/leave_portal") == ["leave_portal 1.0.0", "leave_portal 1.0.0"]
    assert not table_exists(prod, "hr_core", "payslip")
    assert engine.running("Production") == {"hr_core": "1.0.0", "leave_portal": "1.0.0"}
    assert plan.generated_sql.count() == 2
    steps = {s.kind for s in plan.stages.get().steps.all()}
    assert {StepKind.COMPILE, StepKind.GENERATE_SQL, StepKind.UPLOAD} <= steps

    # The environment is held while the plan waits.
    other = engine.plan("Development", "Production", new)
    with pytest.raises(moves.TargetHeld, match=str(plan.key)):
        plans.start_plan(actor=Actor.person(engine.release), plan=other)

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)

    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert engine.answers("Production", "/leave_portal") == ["leave_portal 1.1.0", "leave_portal 1.1.0"]
    assert table_exists(prod, "hr_core", "payslip")
    assert ("employee", "email", "character varying", 254) in schema_columns(prod, "hr_core")
    assert engine.running("Production") == {"hr_core": "1.1.0", "leave_portal": "1.1.0"}
    assert plan.point_of_no_return_at is not None
    # The environment is free again.
    plans.start_plan(actor=Actor.person(engine.release), plan=other)


def test_deploy_now_runs_both_stages_on_a_single_stage_target(engine):
    engine.start_worker()
    test_env = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    plan = engine.deploy("Development", "Test", [engine.version("hr_core", "1.1.0")])
    assert plan.state in {PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS}
    # Deploy Now: Prepare hands over to Continue at once, never waiting for a person.
    assert [t.to_state for t in plan.transitions.all()] == [
        PlanState.PREPARING,
        PlanState.CONTINUING,
        PlanState.APPLYING,
        plan.state,
    ]
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert table_exists(test_env, "hr_core", "payslip")
    assert [s.kind for s in plan.stages.all()] == ["prepare", "continue"]


def test_a_sql_failure_at_continue_leaves_the_schema_and_the_frontends_unchanged(production):
    engine = production
    prod = engine.environments["Production"]
    new = [engine.version("hr_core", "1.1.0")]
    plan = engine.plan("Development", "Production", new)
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    before = schema_columns(prod, "hr_core")
    # Data that the new unique index cannot accept: the rehearsal (schema only) did not see it.
    conn = __import__("psycopg2").connect(prod.app_db_dsn())
    with conn, conn.cursor() as cur:
        cur.execute("select count(*) from hr_core.employee")
    conn.close()
    sql = plan.generated_sql.get()
    statements = list(sql.statements)
    statements.insert(
        len(statements) // 2,
        {
            "sql": "ALTER TABLE hr_core.employee ADD COLUMN broken no_such_type",
            "kind": "script",
            "source": "sql/x.sql",
            "flags": [],
            "line": 1,
        },
    )
    type(sql).objects.filter(pk=sql.pk).update(statements=statements)

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.FINISHED_WITH_ERRORS)

    assert schema_columns(prod, "hr_core") == before
    assert not table_exists(prod, "hr_core", "payslip")
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    assert engine.running("Production")["hr_core"] == "1.0.0"
    log = "\n".join(plan.log_lines.values_list("message", flat=True))
    assert "no_such_type" in log and "ADD COLUMN broken" in log


def test_one_agent_down_at_continue_leaves_every_frontend_on_the_old_version(production):
    engine = production
    new = [engine.version("hr_core", "1.1.0")]
    plan = engine.plan("Development", "Production", new)
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    down = engine.frontends["Production"][1]
    down.agent.stop()

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.FINISHED_WITH_ERRORS, timeout_s=180)

    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    assert engine.running("Production")["hr_core"] == "1.0.0"
    failed = plan.stages.get(kind="continue").explanation
    assert down.row.name in failed, failed


def test_a_drifted_prepared_plan_refuses_continue_and_offers_prepare_again(production):
    engine = production
    prod = engine.environments["Production"]
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    conn = __import__("psycopg2").connect(prod.app_db_dsn())
    with conn, conn.cursor() as cur:
        cur.execute("alter table hr_core.employee add column nickname text")
    conn.close()

    with pytest.raises(plans.PlanRefused, match="database schema of hr_core changed since Prepare"):
        plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    plan.refresh_from_db()
    assert plan.is_prepared
    plans.prepare_again(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
