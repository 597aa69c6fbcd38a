"""Approvals through the API (an extension of LifeTime's): approve and reject with a comment, the
status answer lists the decisions, Continue answers 400 with the sentence until they are in."""

from __future__ import annotations

import pytest

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import PlanState
from environments import services as env_services
from environments.models import AccessLevel
from tests.api.conftest import ApiClient, create_token, errors, saved_plan
from tests.api.test_deployments import mark_prepared, started

S = PlanState


@pytest.fixture
def prod(landscape):
    env = landscape["Production"]
    data = {name: getattr(env, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(approvals_required=1)
    return env_services.save_environment(actor=Actor.system("test"), environment=env, data=data)


@pytest.fixture
def approver_api(prod) -> ApiClient:
    return ApiClient(create_token("go-no-go", {prod: AccessLevel.DEPLOY}))


def test_a_pipeline_continues_once_another_account_approved(api, approver_api, prod, landscape, hr_core, release_user):
    plan = mark_prepared(started(api, saved_plan(release_user, landscape["Development"], prod, [hr_core])))
    status = api.get(f"/deployments/{plan.key}/status").json()
    assert status["Approvals"]["Needed"] == 1 and status["Approvals"]["Missing"] == 1
    assert status["Approvals"]["Decisions"] == []

    refused = api.post(f"/deployments/{plan.key}/continue")
    assert refused.status_code == 400
    assert "Continue needs 1 approval" in errors(refused) and "other than pipeline" in errors(refused)
    # The account that prepared the plan cannot approve it.
    own = api.post(f"/deployments/{plan.key}/approve", {"Comment": "me"})
    assert own.status_code == 400 and "somebody else must approve" in errors(own)

    approved = approver_api.post(f"/deployments/{plan.key}/approve/", {"Comment": "CAB-77 ok"})
    assert approved.status_code == 200, approved.content
    assert approved.json()["Complete"] is True
    assert approver_api.post(f"/deployments/{plan.key}/approve").status_code == 409
    (decision,) = api.get(f"/deployments/{plan.key}/status").json()["Approvals"]["Decisions"]
    assert (decision["User"], decision["Decision"], decision["Comment"], decision["Counted"]) == (
        "go-no-go",
        "Approved",
        "CAB-77 ok",
        True,
    )
    assert api.post(f"/deployments/{plan.key}/continue").status_code == 202
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    assert AuditEvent.objects.filter(action="plan.approved", actor__username="go-no-go").exists()


def test_a_rejection_through_the_api_blocks_continue(api, approver_api, prod, landscape, hr_core, release_user):
    plan = mark_prepared(started(api, saved_plan(release_user, landscape["Development"], prod, [hr_core])))
    rejected = approver_api.post(f"/deployments/{plan.key}/reject", {"Comment": "freeze week"})
    assert rejected.status_code == 200 and rejected.json()["Rejected"] is True
    refused = api.post(f"/deployments/{plan.key}/continue")
    assert refused.status_code == 400 and "Rejected by go-no-go: freeze week" in errors(refused)
    assert approver_api.post(f"/deployments/{plan.key}/reject", {"Comment": 3}).status_code == 400


def test_an_account_without_the_right_cannot_approve(test_only_token, api, prod, landscape, hr_core, release_user):
    plan = mark_prepared(started(api, saved_plan(release_user, landscape["Development"], prod, [hr_core])))
    response = ApiClient(test_only_token).post(f"/deployments/{plan.key}/approve")
    assert response.status_code == 403


def test_a_saved_plan_cannot_be_approved(approver_api, prod, landscape, hr_core, release_user):
    plan = saved_plan(release_user, landscape["Development"], prod, [hr_core])
    response = approver_api.post(f"/deployments/{plan.key}/approve")
    assert response.status_code == 400 and "only a prepared plan" in errors(response)
