"""D1-D8: deployment plans through the API, with the codes pipelines dispatch on.

Prepare itself runs on the stage worker (tests/api/test_pipeline_end_to_end.py runs it for real);
here, where a test needs a prepared plan, ``mark_prepared`` ends the plan's Prepare the way the
stage does (deployments.stages.prepare): the snapshot of the target, then the transition.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.api.serializers import UNSET_DATE, default_zone_key
from deployments.models import DeploymentPlan, OperationKind, PlanState
from deployments.stages import engine
from deployments.stages.log import append_log
from deployments.stages.validity import take_snapshot
from deployments.state import moves
from tests.api.conftest import ApiClient, errors, record_running, saved_plan

S = PlanState


@pytest.fixture
def dev_test_prod(landscape):
    return landscape["Development"], landscape["Test"], landscape["Production"]


@pytest.fixture
def portal(register, landscape, hr_core):
    """Leave Portal 1.0.0 running in Development next to HR Core 1.0.0."""
    version = register("leave_portal", "1.0.0")
    record_running(landscape["Development"], version)
    return version


def create_body(source, target, *versions, zone: str = "") -> dict:
    return {
        "ApplicationOperations": [{"ApplicationVersionKey": str(v.key), "DeploymentZoneKey": zone} for v in versions],
        "Notes": "from the pipeline",
        "SourceEnvironmentKey": str(source.key),
        "TargetEnvironmentKey": str(target.key),
    }


def mark_prepared(plan: DeploymentPlan) -> DeploymentPlan:
    fingerprints = {
        op.application.name: engine.schema_fingerprint(plan.target, op.version)
        for op in plan.operations.select_related("application", "version")
        if op.kind == OperationKind.DEPLOY
    }
    return moves.move_plan(
        plan,
        expected={S.PREPARING},
        to=S.PREPARED,
        actor=Actor.system("system"),
        reason="Prepare finished",
        fields={"prepared_at": timezone.now(), "prepared_snapshot": take_snapshot(plan, fingerprints=fingerprints)},
    )


def started(api: ApiClient, plan: DeploymentPlan) -> DeploymentPlan:
    assert api.post(f"/deployments/{plan.key}/start").status_code == 202
    plan.refresh_from_db()
    return plan


# --- D2 -------------------------------------------------------------------------------------


def test_creating_a_plan_answers_201_with_the_bare_key(api, dev_test_prod, hr_core):
    dev, _, prod = dev_test_prod
    response = api.post("/deployments", create_body(dev, prod, hr_core, zone=default_zone_key(prod)))
    assert response.status_code == 201
    key = response.json()
    assert isinstance(key, str) and key == key.lower() and response.content.decode() == f'"{key}"'
    assert response["Location"].endswith(f"/lifetimeapi/rest/v2/deployments/{key}")
    plan = DeploymentPlan.objects.get(key=key)
    assert plan.state == S.SAVED and plan.target == prod and plan.notes == "from the pipeline"
    assert plan.created_by.username == "pipeline"
    assert [op.version for op in plan.operations.all()] == [hr_core]
    event = AuditEvent.objects.get(action="plan.created")
    assert event.actor.username == "pipeline" and event.object_key == key


def test_the_old_application_version_keys_form_is_accepted(api, dev_test_prod, hr_core):
    dev, test, _ = dev_test_prod
    body = {"ApplicationVersionKeys": [str(hr_core.key)], "SourceEnvironmentKey": str(dev.key)}
    body["TargetEnvironmentKey"] = str(test.key)
    response = api.post("/deployments/", body)
    assert response.status_code == 201
    assert DeploymentPlan.objects.get(key=response.json()).operations.get().version == hr_core


@pytest.mark.parametrize(
    "change, status, message",
    [
        (lambda b: b.pop("TargetEnvironmentKey"), 400, "TargetEnvironmentKey is required"),
        (lambda b: b.update(TargetEnvironmentKey="prod"), 400, "is not a key"),
        (lambda b: b.update(TargetEnvironmentKey=str(uuid.uuid4())), 404, "No environment"),
        (lambda b: b.update(ApplicationOperations=[]), 400, "at least one"),
        (lambda b: b.update(ApplicationOperations="x"), 400, "must be a list"),
        (
            lambda b: b.update(ApplicationOperations=[{"ApplicationVersionKey": str(uuid.uuid4())}]),
            400,
            "No application version",
        ),
        (lambda b: b.update(ApplicationOperations=[{"ApplicationVersionKey": 5}]), 400, "is not a key"),
        (lambda b: b["ApplicationOperations"][0].update(DeploymentZoneKey=str(uuid.uuid4())), 400, "not a zone of"),
        (lambda b: b.pop("ApplicationOperations"), 400, "ApplicationOperations is required"),
        (lambda b: b.update(Notes=["x"]), 400, "Notes must be a string"),
        (lambda b: b.update(SourceEnvironmentKey=b["TargetEnvironmentKey"]), 400, "must be different"),
        (lambda b: b["ApplicationOperations"].append(b["ApplicationOperations"][0]), 400, "appears twice"),
    ],
)
def test_a_bad_creation_body_says_what_is_wrong_and_creates_nothing(
    api, dev_test_prod, hr_core, change, status, message
):
    dev, test, _ = dev_test_prod
    body = create_body(dev, test, hr_core)
    change(body)
    response = api.post("/deployments", body)
    assert response.status_code == status and message in errors(response), errors(response)
    assert not DeploymentPlan.objects.exists()


def test_a_creation_body_that_is_not_json_is_a_400(api):
    assert api.post("/deployments", raw=b"not json").status_code == 400
    assert api.post("/deployments", raw=b'"a string"').status_code == 400
    assert api.post("/deployments").status_code == 400


def test_a_token_without_deploy_on_production_cannot_create_a_plan_there(test_only_token, dev_test_prod, hr_core):
    dev, test, prod = dev_test_prod
    client = ApiClient(test_only_token)
    response = client.post("/deployments", create_body(dev, prod, hr_core))
    assert response.status_code == 403 and "Production" in errors(response)
    assert not DeploymentPlan.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="plan.").exists()
    assert client.post("/deployments", create_body(dev, test, hr_core)).status_code == 201


# --- D1 -------------------------------------------------------------------------------------


def test_plans_are_listed_newest_first_and_unfinished_ones_whatever_the_dates(
    api, dev_test_prod, hr_core, release_user
):
    dev, test, prod = dev_test_prod
    old_finished = saved_plan(release_user, dev, test, [hr_core])
    system = Actor.system("system")
    moves.move_plan(old_finished, expected={S.SAVED}, to=S.PREPARING, actor=system)
    moves.move_plan(old_finished, expected={S.PREPARING}, to=S.CONTINUING, actor=system)
    moves.move_plan(old_finished, expected={S.CONTINUING}, to=S.APPLYING, actor=system)
    moves.move_plan(old_finished, expected={S.APPLYING}, to=S.FINISHED_SUCCESSFUL, actor=system)
    old_prepared = mark_prepared(started(api, saved_plan(release_user, dev, prod, [hr_core])))
    a_week_ago = timezone.now() - dt.timedelta(days=7)
    DeploymentPlan.objects.filter(pk__in=[old_finished.pk, old_prepared.pk]).update(created_at=a_week_ago)
    new = saved_plan(release_user, dev, test, [hr_core])

    everything = [d["Key"] for d in api.get("/deployments").json()]
    assert everything == [str(new.key), str(old_prepared.key), str(old_finished.key)]
    today = timezone.now().date().isoformat()
    recent = [d["Key"] for d in api.get(f"/deployments?MinDate={today}").json()]
    assert recent == [str(new.key), str(old_prepared.key)]
    old_only = api.get(f"/deployments?MaxDate={(timezone.now() - dt.timedelta(days=6)).date()}").json()
    assert [d["Key"] for d in old_only] == [str(new.key), str(old_prepared.key), str(old_finished.key)]
    to_test = [d["Key"] for d in api.get(f"/deployments?TargetEnvironmentKey={test.key}&MinDate={today}").json()]
    assert to_test == [str(new.key)]
    listed = api.get(f"/deployments?TargetEnvironmentKey={prod.key}").json()[0]
    assert listed["StartedOn"] != UNSET_DATE and listed["AbortedOn"] == UNSET_DATE and listed["AbortedBy"] == ""
    assert listed["ApplicationOperations"][0]["DeploymentOperation"] == "Deploy 1.0.0"


@pytest.mark.parametrize(
    "query", ["MinDate=2024-13-01", "MinDate=20240101", "MaxDate=yesterday", "MinDate=2024-05-02&MaxDate=2024-05-01"]
)
def test_bad_dates_are_400s(api, query):
    response = api.get(f"/deployments?{query}")
    assert response.status_code == 400


def test_the_list_answers_an_empty_list_and_filters_by_visible_targets(db, landscape, hr_core, release_user):
    from tests.api.conftest import create_token

    viewer = ApiClient(create_token("viewer", {landscape["Test"]: 1}))
    assert viewer.get("/deployments").json() == []
    saved_plan(release_user, landscape["Development"], landscape["Production"], [hr_core])
    assert viewer.get("/deployments").json() == []
    assert viewer.get(f"/deployments?TargetEnvironmentKey={landscape['Production'].key}").status_code == 403
    assert viewer.get(f"/deployments?TargetEnvironmentKey={uuid.uuid4()}").status_code == 400


# --- D3 -------------------------------------------------------------------------------------


def test_plan_details_list_new_and_redeployed_applications_and_conflicts(
    api, dev_test_prod, portal, hr_core, release_user
):
    dev, test, _ = dev_test_prod
    record_running(test, hr_core)
    plan = saved_plan(release_user, dev, test, [hr_core, portal])
    body = api.get(f"/deployments/{plan.key}").json()
    assert body["Deployment"]["Key"] == str(plan.key)
    assert body["Deployment"]["CreatedByUsername"] == "release"
    assert body["ApplicationsToDeploy"] == [
        {"ApplicationKey": str(portal.application.key), "ApplicationName": "leave_portal", "IsNew": True}
    ]
    assert body["ApplicationsToRedeploy"] == [str(hr_core.application.key)]
    assert body["ApplicationConflicts"] == [] and body["ModulesToDelete"] == []

    record_running(test, hr_core)
    lonely = saved_plan(release_user, dev, landscape_env(dev_test_prod, "Production"), [portal])
    conflicts = api.get(f"/deployments/{lonely.key}/").json()["ApplicationConflicts"]
    assert len(conflicts) == 1 and "needs hr_core" in conflicts[0]["Message"]


def landscape_env(envs, name):
    return {e.name: e for e in envs}[name]


def test_unknown_plans_are_404s_everywhere(api):
    key = uuid.uuid4()
    assert api.get(f"/deployments/{key}").status_code == 404
    assert api.get(f"/deployments/{key}/status").status_code == 404
    assert api.delete(f"/deployments/{key}").status_code == 404
    for command in ("start", "continue", "abort"):
        assert api.post(f"/deployments/{key}/{command}").status_code == 404
    assert api.get("/deployments/not-a-key").status_code == 404


# --- D4 -------------------------------------------------------------------------------------


def test_only_a_saved_plan_can_be_deleted(api, dev_test_prod, hr_core, release_user):
    dev, test, _ = dev_test_prod
    plan = saved_plan(release_user, dev, test, [hr_core])
    response = api.delete(f"/deployments/{plan.key}/")
    assert response.status_code == 204 and response.content == b""
    assert not DeploymentPlan.objects.filter(pk=plan.pk).exists()
    assert AuditEvent.objects.get(action="plan.deleted").actor.username == "pipeline"
    assert api.delete(f"/deployments/{plan.key}").status_code == 404
    running = started(api, saved_plan(release_user, dev, test, [hr_core]))
    response = api.delete(f"/deployments/{running.key}")
    assert response.status_code == 400 and "Only saved plans can be deleted" in errors(response)


# --- D5 -------------------------------------------------------------------------------------


def test_start_answers_202_once_the_plan_has_left_saved(api, dev_test_prod, hr_core, release_user):
    _, _, prod = dev_test_prod
    plan = saved_plan(release_user, dev_test_prod[0], prod, [hr_core])
    response = api.post(f"/deployments/{plan.key}/start?RedeployOutdated=False&ContinueWithErrors=false")
    assert response.status_code == 202 and response.content == b""
    plan.refresh_from_db()
    assert plan.state == S.PREPARING and plan.started_by.username == "pipeline"
    assert api.get(f"/deployments/{plan.key}/status").json()["DeploymentStatus"] == "running"
    event = AuditEvent.objects.get(action="plan.started")
    assert event.actor.username == "pipeline"
    assert plan.transitions.get().actor.username == "pipeline"


def test_start_says_why_it_cannot_start(api, dev_test_prod, hr_core, portal, release_user):
    dev, test, prod = dev_test_prod
    invalid = saved_plan(release_user, dev, test, [portal])
    response = api.post(f"/deployments/{invalid.key}/start")
    assert response.status_code == 400 and "needs hr_core" in errors(response)
    invalid.refresh_from_db()
    assert invalid.state == S.SAVED

    holder = started(api, saved_plan(release_user, dev, prod, [hr_core]))
    mark_prepared(holder)
    other = saved_plan(release_user, dev, prod, [hr_core])
    response = api.post(f"/deployments/{other.key}/start")
    assert response.status_code == 400
    assert str(holder.key) in errors(response) and "prepared" in errors(response)

    # Starting it again is refused with a 400 (LifeTime's code here), not a 409.
    assert api.post(f"/deployments/{holder.key}/start").status_code == 400
    assert api.post(f"/deployments/{invalid.key}/start?RedeployOutdated=maybe").status_code == 400


# --- D6 -------------------------------------------------------------------------------------


def test_continue_a_prepared_plan_then_a_second_continue_is_a_409(api, dev_test_prod, hr_core, release_user):
    dev, _, prod = dev_test_prod
    plan = mark_prepared(started(api, saved_plan(release_user, dev, prod, [hr_core])))
    status = api.get(f"/deployments/{plan.key}/status").json()
    assert status["DeploymentStatus"] == "needs_user_intervention" and status["Info"] == "deployment_prepared"

    assert api.post(f"/deployments/{plan.key}/continue").status_code == 202
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING and plan.continued_by.username == "pipeline"
    assert api.get(f"/deployments/{plan.key}/status").json() | {"DeploymentLog": []} == {
        "DeploymentStatus": "running",
        "Info": "",
        "DeploymentLog": [],
    }
    second = api.post(f"/deployments/{plan.key}/continue/")
    assert second.status_code == 409 and "already running" in errors(second)
    assert plan.stages.filter(kind="continue").count() == 1
    assert AuditEvent.objects.filter(action="plan.continued", actor__username="pipeline").count() == 1


def test_continue_of_a_plan_that_is_not_prepared_is_a_400(api, dev_test_prod, hr_core, release_user):
    plan = saved_plan(release_user, dev_test_prod[0], dev_test_prod[2], [hr_core])
    response = api.post(f"/deployments/{plan.key}/continue")
    assert response.status_code == 400 and "nothing to continue" in errors(response)


# --- D7 -------------------------------------------------------------------------------------


def test_abort_a_prepared_plan_goes_straight_to_aborted(api, dev_test_prod, hr_core, release_user):
    dev, _, prod = dev_test_prod
    plan = mark_prepared(started(api, saved_plan(release_user, dev, prod, [hr_core])))
    assert api.post(f"/deployments/{plan.key}/abort").status_code == 202
    plan.refresh_from_db()
    assert plan.state == S.ABORTED and plan.aborted_by.username == "pipeline"
    details = api.get(f"/deployments/{plan.key}").json()["Deployment"]
    assert details["AbortedByUsername"] == "pipeline" and details["AbortedOn"] != UNSET_DATE
    response = api.post(f"/deployments/{plan.key}/abort")
    assert response.status_code == 400 and "cannot be aborted" in errors(response)
    # The target is free again.
    assert started(api, saved_plan(release_user, dev, prod, [hr_core])).state == S.PREPARING


def test_abort_after_the_point_of_no_return_is_refused(api, dev_test_prod, hr_core, release_user):
    dev, _, prod = dev_test_prod
    plan = mark_prepared(started(api, saved_plan(release_user, dev, prod, [hr_core])))
    api.post(f"/deployments/{plan.key}/continue")
    moves.move_plan(
        plan,
        expected={S.CONTINUING},
        to=S.APPLYING,
        actor=Actor.system("continue"),
        fields={"point_of_no_return_at": timezone.now()},
    )
    response = api.post(f"/deployments/{plan.key}/abort")
    assert response.status_code == 400 and "point of no return" in errors(response)


# --- D8 -------------------------------------------------------------------------------------


def test_status_carries_the_log_lines(api, dev_test_prod, hr_core, release_user):
    plan = saved_plan(release_user, dev_test_prod[0], dev_test_prod[1], [hr_core])
    body = api.get(f"/deployments/{plan.key}/status").json()
    assert body == {"DeploymentStatus": "saved", "Info": "", "DeploymentLog": []}
    append_log(plan, "info", "Prepare started")
    append_log(plan, "warning", "hr_core: a column would be dropped")
    log = api.get(f"/deployments/{plan.key}/status/").json()["DeploymentLog"]
    assert [(m["Type"], m["Message"]) for m in log] == [
        ("Info", "Prepare started"),
        ("Warning", "hr_core: a column would be dropped"),
    ]
    assert all(m["Instant"].endswith("Z") for m in log)


# --- rights ---------------------------------------------------------------------------------


def test_a_token_without_deploy_on_production_changes_nothing_there(
    test_only_token, api, dev_test_prod, hr_core, release_user
):
    dev, _, prod = dev_test_prod
    limited = ApiClient(test_only_token)
    saved = saved_plan(release_user, dev, prod, [hr_core])
    prepared = mark_prepared(started(api, saved_plan(release_user, dev, prod, [hr_core])))
    audit_before = AuditEvent.objects.count()

    # Reading is allowed with the view right.
    assert limited.get(f"/deployments/{saved.key}").status_code == 200
    assert limited.get(f"/deployments/{prepared.key}/status").status_code == 200
    assert limited.post(f"/deployments/{saved.key}/start").status_code == 403
    assert limited.delete(f"/deployments/{saved.key}").status_code == 403
    assert limited.post(f"/deployments/{prepared.key}/continue").status_code == 403
    assert limited.post(f"/deployments/{prepared.key}/abort").status_code == 403
    path = f"/environments/{dev.key}/applications/{hr_core.application.key}/versions"
    assert ApiClient(test_only_token).post(path, {"Version": "3.0.0"}).status_code == 201  # deploy on Development

    saved.refresh_from_db()
    prepared.refresh_from_db()
    assert saved.state == S.SAVED and saved.started_at is None
    assert prepared.state == S.PREPARED
    assert not prepared.stages.filter(kind="continue").exists()
    changed = AuditEvent.objects.all()[: AuditEvent.objects.count() - audit_before]
    assert {e.action for e in changed} == {"application_version.registered", "application_version.tagged"}
