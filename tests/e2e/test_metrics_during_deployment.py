"""/metrics read over HTTP by a scraper while a real two-stage deployment runs: the plan shows as
preparing and then prepared, the running stage is counted, and afterwards the stage and step
durations, the Continue against Production's window, the agents and the queues are there."""

from __future__ import annotations

import time
import urllib.request

import pytest

from core.actors import Actor
from deployments.models import StageKind, StepKind
from deployments.plans import services as plans
from deployments.state.machine import PlanState, StageState
from environments import agents
from tests.status.metrics_text import samples, value

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKEN = "prometheus-scrape-token"


def scrape(engine) -> dict:
    request = urllib.request.Request(f"{engine.console_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return samples(response.read().decode())


def test_metrics_follow_a_two_stage_deployment(engine, settings):
    settings.METRICS_TOKEN = TOKEN
    engine.start_worker()
    engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])

    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    seen_preparing = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = scrape(engine)
        if value(found, "lifetime_plans", environment="Production", state=PlanState.PREPARING) == 1:
            running = value(found, "lifetime_stages_active", kind=StageKind.PREPARE, status=StageState.RUNNING)
            queued = value(found, "lifetime_stages_active", kind=StageKind.PREPARE, status=StageState.QUEUED)
            seen_preparing = (running, queued)
            if running == 1:
                break
        plan.refresh_from_db()
        if plan.state == PlanState.PREPARED:
            break
        time.sleep(0.1)
    assert seen_preparing is not None and 1 in seen_preparing, "the scraper never saw the plan preparing"
    engine.wait(plan, PlanState.PREPARED)

    found = scrape(engine)
    assert value(found, "lifetime_plans", environment="Production", state=PlanState.PREPARED) == 1
    assert value(found, "lifetime_environment_held", environment="Production") == 1
    assert value(found, "lifetime_continue_sql_estimate_seconds", environment="Production", bound="pessimistic") > 0
    assert value(found, "lifetime_deployment_window_seconds", environment="Production") == 7200

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)
    agents.refresh_reports(environment=engine.environments["Production"], timeout_s=5)

    found = scrape(engine)
    assert value(found, "lifetime_plans", environment="Production", state=plan.state) == 1
    assert value(found, "lifetime_environment_held", environment="Production") == 0
    for kind in (StageKind.PREPARE, StageKind.CONTINUE):
        assert value(found, "lifetime_stage_duration_seconds_count", kind=kind, status=StageState.SUCCEEDED) == 1
        assert value(found, "lifetime_stage_duration_seconds_sum", kind=kind, status=StageState.SUCCEEDED) > 0
    for kind in (StepKind.COMPILE, StepKind.UPLOAD):
        assert value(found, "lifetime_step_duration_seconds_count", kind=kind) >= 1
    for kind in (StepKind.EXECUTE_SQL, StepKind.SWITCH):
        assert value(found, "lifetime_step_duration_seconds_count", kind=kind) >= 1
    took = value(found, "lifetime_continue_last_duration_seconds", environment="Production")
    assert took > 0
    assert value(found, "lifetime_continue_duration_seconds_count", environment="Production") == 1
    assert value(found, "lifetime_continue_last_window_ratio", environment="Production") == pytest.approx(took / 7200)
    assert value(found, "lifetime_agents_up", environment="Production") == 2
    assert value(found, "lifetime_redis_up") == 1
    for fe in engine.frontends["Production"]:
        assert value(found, "lifetime_agent_up", environment="Production", frontend=fe.row.name) == 1
        assert value(found, "lifetime_queue_length", queue=fe.row.queue) == 0
    assert value(found, "lifetime_queue_length", queue="stages") is not None
