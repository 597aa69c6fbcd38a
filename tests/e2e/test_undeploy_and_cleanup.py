"""Undeploy removes an application from every front-end; old releases are cleaned up after Continue."""

from __future__ import annotations

import pytest

from core.actors import Actor
from deployments.models import PlanState
from deployments.plans import services as plans

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_undeploy_takes_the_application_off_every_frontend(engine):
    engine.start_worker()
    engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    hr, leave = engine.version("hr_core", "1.1.0"), engine.version("leave_portal", "1.1.0")
    engine.deploy("Development", "Test", [hr, leave])
    assert engine.answers("Test", "/leave_portal") == ["leave_portal 1.1.0", "leave_portal 1.1.0"]

    plan = plans.create_plan(
        actor=Actor.person(engine.release),
        source=engine.environments["Development"],
        target=engine.environments["Test"],
        operations=[plans.Operation(leave.application, None)],
    )
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)

    assert engine.running("Test") == {"hr_core": "1.1.0"}
    assert [a.startswith("HTTP 404") for a in engine.answers("Test", "/leave_portal")] == [True, True]
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]


def test_hr_core_cannot_be_undeployed_while_leave_portal_needs_it(engine):
    engine.start_worker()
    engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    hr, leave = engine.version("hr_core", "1.1.0"), engine.version("leave_portal", "1.1.0")
    engine.deploy("Development", "Test", [hr, leave])
    plan = plans.create_plan(
        actor=Actor.person(engine.release),
        source=engine.environments["Development"],
        target=engine.environments["Test"],
        operations=[plans.Operation(hr.application, None)],
    )
    with pytest.raises(plans.PlanInvalid, match="leave_portal needs hr_core"):
        plans.start_plan(actor=Actor.person(engine.release), plan=plan)


def test_old_releases_are_cleaned_up_but_current_and_previous_stay(engine):
    from deployments.catalog.tagging import tag_running_version

    engine.worker_env_extra["RELEASES_KEPT"] = "2"
    engine.start_worker()
    test_env = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    engine.deploy("Development", "Test", [engine.version("hr_core", "1.0.0")])
    hr_110 = engine.version("hr_core", "1.1.0")
    engine.deploy("Development", "Test", [hr_110])
    tagged = tag_running_version(
        actor=Actor.person(engine.hosts.actor),
        environment=test_env,
        application=hr_110.application,
        version="1.1.1",
        change_log="Tagged in Test",
    )
    plan = engine.deploy("Development", "Test", [tagged])
    for fe in engine.frontends["Test"]:
        releases = sorted(p.name for p in (fe.root / "releases" / "hr_core").iterdir() if p.name != "current")
        assert [r.split("-")[0] for r in releases] == ["1.1.0", "1.1.1"], releases
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]  # the same code, tagged
    assert plan.log_lines.filter(message__contains="removed 1 old release").count() == 2
