"""The API's say in windows and freezes: Continue with a Reason outside an enforced window or
during a freeze (the manage right for a freeze), Continue scheduled for the next window, and a
400 that names the parameter that would help."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import PlanState
from environments import services as env_services
from environments.models import AccessLevel
from tests.api.conftest import ApiClient, create_token, errors, saved_plan
from tests.api.test_deployments import mark_prepared, started

S = PlanState
SYSTEM = Actor.system("test")


def _window_later(env, *, enforce: bool = True):
    start = (timezone.now() + dt.timedelta(hours=2)).astimezone(dt.UTC).replace(second=0, microsecond=0)
    data = {name: getattr(env, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(window_days=list(range(7)), window_start=start.time(), window_minutes=60, enforce_window=enforce)
    return env_services.save_environment(actor=SYSTEM, environment=env, data=data), start


def _freeze_now(env, reason="Black Friday"):
    now = timezone.now()
    env_services.add_freeze(
        actor=SYSTEM,
        environment=env,
        reason=reason,
        starts_at=now - dt.timedelta(hours=1),
        ends_at=now + dt.timedelta(hours=5),
    )


@pytest.fixture
def manager_api(landscape) -> ApiClient:
    return ApiClient(create_token("release-manager", {env: AccessLevel.MANAGE for env in landscape.values()}))


def test_outside_an_enforced_window_the_400_names_reason_and_continue_at(api, landscape, hr_core, release_user):
    prod, start = _window_later(landscape["Production"])
    plan = mark_prepared(started(api, saved_plan(release_user, landscape["Development"], prod, [hr_core])))
    refused = api.post(f"/deployments/{plan.key}/continue")
    assert refused.status_code == 400
    assert '{"Reason": "..."}' in errors(refused) and '{"ContinueAt": "NextWindow"}' in errors(refused)

    # Scheduled for the next window through the API: the plan stays prepared, Continue set then.
    assert api.post(f"/deployments/{plan.key}/continue", {"ContinueAt": "NextWindow"}).status_code == 202
    plan.refresh_from_db()
    assert plan.state == S.SCHEDULED and plan.continue_scheduled_at == start
    status = api.get(f"/deployments/{plan.key}/status").json()
    assert (status["DeploymentStatus"], status["Info"]) == ("needs_user_intervention", "deployment_prepared")

    # Or now, with a reason.
    assert api.post(f"/deployments/{plan.key}/continue", {"Reason": "hotfix INC-1"}).status_code == 202
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    assert AuditEvent.objects.filter(action="plan.window_overridden", message="hotfix INC-1").exists()


def test_continue_at_a_given_time_or_a_bad_one(api, landscape, hr_core, release_user):
    prod, start = _window_later(landscape["Production"])
    plan = mark_prepared(started(api, saved_plan(release_user, landscape["Development"], prod, [hr_core])))
    at = (start + dt.timedelta(minutes=10)).isoformat()
    assert api.post(f"/deployments/{plan.key}/continue", {"ContinueAt": at}).status_code == 202
    plan.refresh_from_db()
    assert plan.continue_scheduled_at == start + dt.timedelta(minutes=10)
    bad = api.post(f"/deployments/{plan.key}/continue", {"ContinueAt": "tomorrow"})
    assert bad.status_code == 400 and "ContinueAt must be" in errors(bad)
    naive = api.post(f"/deployments/{plan.key}/continue", {"ContinueAt": "2030-01-01T02:00:00"})
    assert naive.status_code == 400


def test_during_a_freeze_only_an_account_with_the_manage_right_continues_with_a_reason(
    api, manager_api, landscape, hr_core, release_user
):
    prod = landscape["Production"]
    _freeze_now(prod)
    plan = mark_prepared(started(api, saved_plan(release_user, landscape["Development"], prod, [hr_core])))
    refused = api.post(f"/deployments/{plan.key}/continue")
    assert refused.status_code == 400
    assert "frozen" in errors(refused) and "Black Friday" in errors(refused)
    assert "manage right" in errors(refused) and '{"Reason": "..."}' in errors(refused)
    assert api.post(f"/deployments/{plan.key}/continue", {"Reason": "please"}).status_code == 400

    assert manager_api.post(f"/deployments/{plan.key}/continue", {"Reason": "payments down, INC-7"}).status_code == 202
    event = AuditEvent.objects.get(action="plan.freeze_overridden")
    assert event.actor.username == "release-manager" and "payments down, INC-7" in event.message


def test_deploy_now_through_the_api_during_a_freeze(api, manager_api, landscape, hr_core, release_user):
    test = landscape["Test"]
    _freeze_now(test, "code freeze")
    plan = saved_plan(release_user, landscape["Development"], test, [hr_core])
    refused = api.post(f"/deployments/{plan.key}/start")
    assert refused.status_code == 400 and "code freeze" in errors(refused)
    assert manager_api.post(f"/deployments/{plan.key}/start", {"Reason": "CVE fix"}).status_code == 202
    plan.refresh_from_db()
    assert plan.state == S.PREPARING


def test_start_of_a_version_that_does_not_run_in_the_source_names_the_reason(
    api, manager_api, landscape, register, release_user
):
    prod = landscape["Production"]
    data = {name: getattr(prod, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(only_versions_running_in_source=True)
    prod = env_services.save_environment(actor=SYSTEM, environment=prod, data=data)
    plan = saved_plan(release_user, landscape["Test"], prod, [register("hr_core", "1.1.0")])
    refused = api.post(f"/deployments/{plan.key}/start")
    assert refused.status_code == 400
    assert "hr_core 1.1.0 does not run in Test" in errors(refused) and '{"Reason": "..."}' in errors(refused)
    assert manager_api.post(f"/deployments/{plan.key}/start", {"Reason": "emergency build"}).status_code == 202
    assert AuditEvent.objects.filter(action="plan.promotion_overridden", message="emergency build").exists()
