"""The SQL of the window through the stages' engine: the estimate from the target's table sizes,
Continue refused when it may not fit, indexes built during Prepare and dropped when the plan will
not continue, constraints validated after the window. Real PostgreSQL: the landscape's Production
application database and the rehearsal server."""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest
from django.urls import reverse
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import GeneratedSql, PlanState, PreparedIndex, SqlTiming
from deployments.plans import services as plans
from deployments.stages import engine, prepared_indexes
from deployments.stages.log import PlanStepLog
from deployments.stages.validity import check_still_valid
from deployments.state import moves
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import make_user
from tests.deployments.test_plans import _plan, _prepared

S = PlanState
ROWS = 200_000


def _query(env, sql: str, params=None):
    conn = psycopg2.connect(env.app_db_dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


def _set(env, **changes):
    data = {name: getattr(env, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(changes)
    return env_services.save_environment(actor=Actor.system("test"), environment=env, data=data)


def _open_window(env, minutes: int = 60):
    """A daily window that opened a minute ago and lasts ``minutes``."""
    start = (timezone.now() - dt.timedelta(minutes=1)).astimezone(dt.UTC).replace(second=0, microsecond=0)
    return _set(
        env, window_days=list(range(7)), window_start=start.time(), window_minutes=minutes, window_timezone="UTC"
    )


def _deploy_first(landscape, versions, release_user):
    """hr_core 1.0.0 in Production, its employee table filled with rows."""
    prod = landscape["Production"]
    first = versions("hr_core", "1.0.0")
    plan = _prepared(_plan(landscape, release_user, [first]))
    generated = engine.generate_and_rehearse(prod, first, PlanStepLog(plan))
    row = GeneratedSql.objects.create(plan=plan, application=first.application, version=first, **generated.model_fields)
    ops = list(plan.operations.select_related("application", "version"))
    plans_transition_running(plan)
    engine.execute_plan_sql(
        plan,
        prod,
        ops,
        {row.application_id: row},
        PlanStepLog(plan),
        resumed=False,
        before_first_statement=lambda: None,
    )
    system = Actor.system("system")
    moves.move_plan(plan, expected={S.CONTINUING}, to=S.APPLYING, actor=system, reason="Point of no return")
    moves.move_plan(plan, expected={S.APPLYING}, to=S.FINISHED_SUCCESSFUL, actor=system, reason="Deployed")
    _query(
        prod,
        "insert into hr_core.employee (department_id, first_name, last_name, email, salary, badge_number) "
        "select 1 + g %% 3, 'First', 'Name' || (g %% 997), 'p' || g || '@example.com', g %% 5000, g "
        "from generate_series(1, %s) g",
        [ROWS],
    )
    _query(prod, "analyze hr_core.employee")
    return first


def plans_transition_running(plan):
    moves.move_plan(plan, expected={S.PREPARED}, to=S.CONTINUING, actor=Actor.system("system"), reason="Continue")


def _prepare(landscape, release_user, version):
    prod = landscape["Production"]
    plan = _prepared(_plan(landscape, release_user, [version]))
    log = PlanStepLog(plan)
    generated = engine.generate_and_rehearse(prod, version, log)
    if prod.build_indexes_during_prepare:
        engine.move_out_of_window(plan, version.application, prod, generated, log)
    row = GeneratedSql.objects.create(
        plan=plan, application=version.application, version=version, **generated.model_fields
    )
    return plan, row


def test_prepare_estimates_each_statement_from_the_targets_table_sizes(landscape, release_user, versions):
    _deploy_first(landscape, versions, release_user)
    plan, row = _prepare(landscape, release_user, versions("hr_core", "1.1.0"))
    by_sql = {s["sql"]: s for s in row.statements}
    index = next(s for sql, s in by_sql.items() if sql.startswith('CREATE INDEX "employee_last_name_idx"'))
    assert index["estimate"]["cost"] == "index_build"
    assert index["estimate"]["lock"] == "SHARE" and index["estimate"]["blocks"] == "writes"
    assert index["estimate"]["tables"] == ["hr_core.employee"] and index["estimate"]["bytes"] > 1_000_000
    assert 0 < index["estimate"]["typical_s"] <= index["estimate"]["pessimistic_s"]
    rewrite = next(s for sql, s in by_sql.items() if "badge_number" in sql and "TYPE bigint" in sql)
    assert rewrite["estimate"]["cost"] == "rewrite" and rewrite["estimate"]["blocks"] == "reads and writes"
    # varchar(120) to varchar(254) is binary-coercible: the rehearsal saw no rewrite.
    widen = next(s for sql, s in by_sql.items() if '"email" TYPE' in sql)
    assert widen["estimate"]["cost"] == "catalog"
    assert row.estimate["typical_s"] > 0 and row.estimate["pessimistic_s"] >= row.estimate["typical_s"]
    assert row.estimate["sizes"]["hr_core.employee"]["rows"] >= ROWS * 0.9
    # Before any history on Production the throughputs were measured on the rehearsal server.
    assert {t["basis"] for t in row.estimate["throughputs"].values()} <= {"rehearsal", "guess"}
    assert SqlTiming.objects.filter(environment__isnull=True, source="rehearsal").exists()


def test_the_plan_page_shows_the_estimate_per_statement_and_against_the_window(
    client, landscape, release_user, versions
):
    _open_window(landscape["Production"])
    _deploy_first(landscape, versions, release_user)
    plan, _ = _prepare(landscape, release_user, versions("hr_core", "1.1.0"))
    client.force_login(release_user)
    html = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert "Continue should take about" in html and "up to" in html
    assert "index build · SHARE lock, blocks writes" in html
    assert "table rewrite · ACCESS EXCLUSIVE lock, blocks reads and writes" in html
    assert "typical" in html and "pessimistic" in html and "measured on the rehearsal server" in html
    assert "squawk: " in html


def test_continue_refuses_when_the_pessimistic_estimate_exceeds_the_window_unless_a_manager_says_why(
    landscape, release_user, versions, client
):
    prod = _open_window(landscape["Production"], minutes=3)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    GeneratedSql.objects.create(
        plan=plan,
        application=plan.operations.first().application,
        version=plan.operations.first().version,
        statements=[],
        schema_fingerprint="x",
        estimate={"typical_s": 60.0, "pessimistic_s": 900.0, "throughputs": {}},
    )
    with pytest.raises(
        plans.EstimateDoesNotFit, match=r"Continue may take up to 15 min .* left in the deployment window"
    ):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    with pytest.raises(plans.EstimateDoesNotFit, match="only a user with the manage right on Production"):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan, override_reason="please")
    client.force_login(release_user)
    html = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert 'id="estimate-does-not-fit"' in html and "Only a user with the manage right" in html
    manager = make_user("dba")
    env_services.set_access(actor=Actor.system("test"), user=manager, environment=prod, level=AccessLevel.MANAGE)
    plan.refresh_from_db()
    plans.continue_plan(actor=Actor.person(manager), plan=plan, override_reason="DBA on call, table is small tonight")
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    event = AuditEvent.objects.get(action="plan.estimate_overridden")
    assert event.actor_name == "dba" and "DBA on call" in event.message
    assert plan.log_lines.filter(level="warning", message__contains="continued anyway by dba").exists()


def test_the_api_status_carries_the_continue_estimate_and_continue_takes_a_reason(landscape, release_user, versions):
    from tests.api.conftest import ApiClient, create_token

    prod = _open_window(landscape["Production"], minutes=3)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    op = plan.operations.first()
    GeneratedSql.objects.create(
        plan=plan,
        application=op.application,
        version=op.version,
        statements=[],
        schema_fingerprint="x",
        estimate={"typical_s": 20.0, "pessimistic_s": 900.0, "throughputs": {}},
    )
    deployer = ApiClient(
        create_token("pipeline", {prod: AccessLevel.DEPLOY, landscape["Development"]: AccessLevel.VIEW})
    )
    status = deployer.get(f"/deployments/{plan.key}/status").json()
    estimate = status["ContinueEstimate"]
    assert estimate["SqlTypicalSeconds"] == 20.0 and estimate["PessimisticSeconds"] >= 900.0
    assert 0 < estimate["WindowRemainingSeconds"] <= 180 and estimate["Fits"] is False
    refused = deployer.post(f"/deployments/{plan.key}/continue")
    assert refused.status_code == 400 and "Continue may take up to" in refused.json()["Errors"][0]
    refused = deployer.post(f"/deployments/{plan.key}/continue", {"Reason": "ship it"})
    assert refused.status_code == 400 and "only a user with the manage right" in refused.json()["Errors"][0]
    manager = ApiClient(
        create_token("dba-pipeline", {prod: AccessLevel.MANAGE, landscape["Development"]: AccessLevel.VIEW})
    )
    assert manager.post(f"/deployments/{plan.key}/continue", {"Reason": 7}).status_code == 400
    assert manager.post(f"/deployments/{plan.key}/continue", {"Reason": "approved, CHG-1"}).status_code == 202
    assert "ContinueEstimate" not in deployer.get(f"/deployments/{plan.key}/status").json()


def test_indexes_are_built_during_prepare_renamed_by_continue_and_never_drift(landscape, release_user, versions):
    prod = _set(landscape["Production"], build_indexes_during_prepare=True)
    landscape["Production"] = prod
    _deploy_first(landscape, versions, release_user)
    plan, row = _prepare(landscape, release_user, versions("hr_core", "1.1.0"))
    record = PreparedIndex.objects.get(plan=plan)
    assert record.state == PreparedIndex.State.READY and record.final_name == "employee_last_name_idx"
    assert _query(
        prod, "select indisvalid from pg_index where indexrelid = %s::regclass", [f"hr_core.{record.name}"]
    ) == [(True,)]
    statement = next(s for s in row.statements if s.get("prepared_index"))
    assert statement["estimate"]["cost"] == "catalog" and statement["estimate"]["blocks"] == ""
    plan.prepared_snapshot = {**plan.prepared_snapshot, "fingerprints": {"hr_core": row.schema_fingerprint}}
    plan.save(update_fields=["prepared_snapshot"])
    assert not [p for p in check_still_valid(plan) if "schema" in p]  # the console's index is no drift
    plans_transition_running(plan)
    ops = list(plan.operations.select_related("application", "version"))
    engine.execute_plan_sql(
        plan,
        prod,
        ops,
        {row.application_id: row},
        PlanStepLog(plan),
        resumed=False,
        before_first_statement=lambda: None,
    )
    assert _query(prod, "select to_regclass('hr_core.employee_last_name_idx') is not null") == [(True,)]
    assert _query(prod, "select to_regclass(%s)", [f"hr_core.{record.name}"]) == [(None,)]
    record.refresh_from_db()
    assert record.state == PreparedIndex.State.USED


def test_abort_drops_the_indexes_built_during_prepare(landscape, release_user, versions):
    prod = _set(landscape["Production"], build_indexes_during_prepare=True)
    landscape["Production"] = prod
    _deploy_first(landscape, versions, release_user)
    plan, _ = _prepare(landscape, release_user, versions("hr_core", "1.1.0"))
    record = PreparedIndex.objects.get(plan=plan)
    plans.abort_plan(actor=Actor.person(release_user), plan=plan)
    # A worker drops them once the abort commits; here the same service runs in-process.
    assert prepared_indexes.drop_for_plan(plan.pk, why="the plan is aborted") == 1
    assert _query(prod, "select to_regclass(%s)", [f"hr_core.{record.name}"]) == [(None,)]
    record.refresh_from_db()
    assert record.state == PreparedIndex.State.DROPPED
    assert plan.log_lines.filter(message__contains="Dropped 1 index(es) built at Prepare").exists()


def test_an_index_that_cannot_be_built_fails_prepare_and_leaves_no_invalid_index(landscape, release_user, versions):
    from deployments.steps import StepFailed

    prod = _set(landscape["Production"], build_indexes_during_prepare=True)
    landscape["Production"] = prod
    _deploy_first(landscape, versions, release_user)
    version = versions("hr_core", "1.1.0")
    plan = _prepared(_plan(landscape, release_user, [version]))
    log = PlanStepLog(plan)
    generated = engine.generate_and_rehearse(prod, version, log)
    # Injected fault: the index's table disappears between the rehearsal and the build.
    _query(prod, "alter table hr_core.employee rename to employee_gone")
    with pytest.raises(StepFailed, match="concurrently failed"):
        engine.move_out_of_window(plan, version.application, prod, generated, log)
    assert PreparedIndex.objects.get(plan=plan).state == PreparedIndex.State.FAILED
    assert _query(prod, "select count(*) from pg_class where relname like 'lifetime_prep_%'") == [(0,)]
