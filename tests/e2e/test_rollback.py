"""Roll Back of a finished plan, for real: a stage worker, two front-ends (agent + server each), the
target's application database. What people check: what the front-ends answer over HTTP, the
running versions, the tables in the target database, the plan's state and history, the refusals."""

from __future__ import annotations

import shutil
import time

import pytest
import requests
from django.urls import reverse

from agent.releases import release_name
from core.actors import Actor
from core.models import AuditEvent
from deployments.catalog import services as catalog
from deployments.models import DeploymentPlan, PlanOperation
from deployments.plans import services as plans
from deployments.state.machine import PlanState
from environments.models import AccessLevel
from examples.build import FORMATS, bundle_files, pack
from tests.api.conftest import create_token
from tests.e2e.conftest import table_exists

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

P = PlanState
FINISHED_OK = (P.FINISHED_SUCCESSFUL, P.FINISHED_WITH_WARNINGS)


def _test_env(engine):
    engine.start_worker()
    return engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())


def test_rollback_puts_every_frontend_back_on_the_version_before_and_keeps_the_new_tables(engine):
    env = _test_env(engine)
    hr_100, hr_110 = engine.version("hr_core", "1.0.0"), engine.version("hr_core", "1.1.0")
    engine.deploy("Development", "Test", [hr_100])
    plan = engine.deploy("Development", "Test", [hr_110])
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert table_exists(env, "hr_core", "payslip")
    op = plan.operations.get()
    assert (op.previous_known, op.previous_version_id) == (True, hr_100.pk)

    plans.rollback_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, P.ROLLED_BACK)

    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    assert engine.running("Test") == {"hr_core": "1.0.0"}
    # The SQL of 1.1 only added: its table stays, and 1.0 runs beside it.
    assert table_exists(env, "hr_core", "payslip")
    last = plan.transitions.order_by("at", "id").last()
    assert (last.from_state, last.to_state, last.reason) == (P.ROLLING_BACK, P.ROLLED_BACK, "Rolled back")
    asked = plan.transitions.get(to_state=P.ROLLING_BACK)
    assert asked.actor == engine.release and "hr_core" in asked.reason
    assert AuditEvent.objects.filter(action="plan.rollback", object_key=str(plan.key), actor=engine.release).exists()
    assert plan.log_lines.filter(message__contains="No SQL runs").exists()
    assert not plan.log_lines.filter(level="error").exists()
    # Nothing left to roll back: a second click is refused.
    with pytest.raises(plans.PlanRefused, match="rolled back"):
        plans.rollback_plan(actor=Actor.person(engine.release), plan=plan)


def test_rollback_is_refused_with_the_reason(engine):
    _test_env(engine)
    hr_100, hr_110 = engine.version("hr_core", "1.0.0"), engine.version("hr_core", "1.1.0")
    first = engine.deploy("Development", "Test", [hr_100])
    second = engine.deploy("Development", "Test", [hr_110])
    release = Actor.person(engine.release)

    # A later plan changed hr_core after the first one.
    with pytest.raises(plans.PlanRefused, match=rf"later plan \({second.key}"):
        plans.rollback_plan(actor=release, plan=first)

    # The release of 1.0.0 is gone from one front-end (removed by hand, say).
    fe = engine.frontends["Test"][1]
    hr_100.refresh_from_db()  # compiled meanwhile
    gone = fe.root / "releases" / "hr_core" / release_name(hr_100.version, hr_100.binary_sha256)
    kept = gone.with_name(".kept-aside")
    shutil.move(gone, kept)
    with pytest.raises(plans.PlanRefused, match=rf"no longer on front-end {fe.row.name}"):
        plans.rollback_plan(actor=release, plan=second)
    shutil.move(kept, gone)

    # Without the deploy right.
    from django.core.exceptions import PermissionDenied

    from tests.conftest import make_user

    with pytest.raises(PermissionDenied):
        plans.rollback_plan(actor=Actor.person(make_user("viewer")), plan=second)

    for plan in (first, second):
        plan.refresh_from_db()
        assert plan.state in FINISHED_OK
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]


def test_rollback_is_refused_after_a_script_marked_not_backward_compatible(engine):
    _test_env(engine)
    hr_100 = engine.version("hr_core", "1.0.0")
    files = bundle_files("hr_core", "1.1.0", modules=4)
    files["lifetime.toml"] += b'\n[scripts."sql/002_full_name.sql"]\nbackward_compatible = false\n'
    hr_110 = catalog.register_bundle(data=pack(files, FORMATS["hr_core"]), actor=Actor.person(engine.hosts.actor))
    engine.deploy("Development", "Test", [hr_100])
    plan = engine.deploy("Development", "Test", [hr_110])
    with pytest.raises(plans.PlanRefused, match=r"ran sql/002_full_name.sql, marked not backward compatible"):
        plans.rollback_plan(actor=Actor.person(engine.release), plan=plan)
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]


def test_a_pipeline_rolls_back_through_the_api(engine):
    env = _test_env(engine)
    hr_100, hr_110 = engine.version("hr_core", "1.0.0"), engine.version("hr_core", "1.1.0")
    engine.deploy("Development", "Test", [hr_100])
    plan = engine.deploy("Development", "Test", [hr_110])
    token = create_token("pipeline", {env: AccessLevel.DEPLOY})
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    base = f"{engine.console_url}/lifetimeapi/rest/v2/deployments/{plan.key}"

    answer = session.post(f"{base}/rollback", json={"ApplicationKeys": [str(hr_110.application.key)]}, timeout=30)
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = session.get(f"{base}/status", timeout=30).json()["DeploymentStatus"]
        if status != "running":
            break
        time.sleep(0.2)
    assert status == "rolled_back"
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]

    again = session.post(f"{base}/rollback", timeout=30)
    assert again.status_code == 400 and "rolled back" in " ".join(again.json()["Errors"])
    assert PlanOperation.objects.get(plan=plan).rolled_back_at is not None
    assert DeploymentPlan.objects.get(pk=plan.pk).state == P.ROLLED_BACK


def test_one_application_rolls_back_from_the_running_versions_of_its_environment(engine, client):
    env = _test_env(engine)
    hr_100, hr_110 = engine.version("hr_core", "1.0.0"), engine.version("hr_core", "1.1.0")
    leave_110 = engine.version("leave_portal", "1.1.0")
    engine.deploy("Development", "Test", [hr_100])
    plan = engine.deploy("Development", "Test", [hr_110, leave_110])
    client.force_login(engine.release)

    page = client.get(reverse("deployments:environment_running", args=[env.key])).content.decode()
    assert page.count(">Roll Back</button>") == 2
    # leave_portal 1.1.0 needs hr_core 1.1: hr_core alone cannot go back.
    refused = client.post(
        reverse("deployments:plan_rollback", args=[plan.key]), {"application": "hr_core"}, follow=True
    )
    assert "leave_portal 1.1.0 needs hr_core" in refused.content.decode()
    plan.refresh_from_db()
    assert plan.state in FINISHED_OK

    response = client.post(reverse("deployments:plan_rollback", args=[plan.key]), {"application": "leave_portal"})
    assert response.status_code == 302
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not PlanOperation.objects.filter(plan=plan, rolled_back_at__isnull=False):
        time.sleep(0.2)
    plan = engine.wait(plan, *FINISHED_OK)
    # Nothing ran of leave_portal before: it is gone from both front-ends; hr_core 1.1.0 stays.
    assert engine.running("Test") == {"hr_core": "1.1.0"}
    assert [a.startswith("HTTP 404") for a in engine.answers("Test", "/leave_portal")] == [True, True]
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert plan.transitions.order_by("at", "id").last().reason == "Rolled back leave_portal"

    # The rest of the plan: hr_core back to 1.0.0, and the plan is rolled back.
    plan_page = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert 'id="roll-back"' in plan_page
    client.post(reverse("deployments:plan_rollback", args=[plan.key]))
    engine.wait(plan, P.ROLLED_BACK)
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    page = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert "Rolled back" in page and "Timeline of Roll Back" in page
    # The earlier Roll Back of leave_portal stays done.
    assert [a.startswith("HTTP 404") for a in engine.answers("Test", "/leave_portal")] == [True, True]
    assert engine.running("Test") == {"hr_core": "1.0.0"}


def test_a_rollback_that_fails_on_one_frontend_leaves_every_frontend_on_the_plan_release(engine):
    _test_env(engine)
    hr_100, hr_110 = engine.version("hr_core", "1.0.0"), engine.version("hr_core", "1.1.0")
    engine.deploy("Development", "Test", [hr_100])
    plan = engine.deploy("Development", "Test", [hr_110])
    hr_100.refresh_from_db()
    # Asked for while every front-end holds 1.0.0; by the time a stage worker takes it, one of them
    # lost that release: its agent refuses to switch, and the other front-end is put back.
    engine.worker.stop()
    plans.rollback_plan(actor=Actor.person(engine.release), plan=plan)
    sick = engine.frontends["Test"][1]
    gone = sick.root / "releases" / "hr_core" / release_name(hr_100.version, hr_100.binary_sha256)
    shutil.move(gone, gone.with_name(".kept-aside"))
    engine.start_worker()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not plan.transitions.filter(reason__startswith="Roll Back failed").exists():
        time.sleep(0.2)

    plan.refresh_from_db()
    assert plan.state in FINISHED_OK
    failed = plan.transitions.order_by("at", "id").last()
    assert failed.from_state == P.ROLLING_BACK and f"front-end {sick.row.name}" in failed.reason, failed.reason
    assert "not uploaded" in failed.reason
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert engine.running("Test") == {"hr_core": "1.1.0"}
    assert plan.operations.get().rolled_back_at is None
