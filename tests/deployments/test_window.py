"""The deployment window: Continue outside it, and Continue scheduled for its start."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import PlanState, Stage
from deployments.plans import services as plans
from deployments.state import moves
from environments import services as env_services
from environments.models import AccessLevel
from tests.deployments.test_plans import _plan, _prepared

S = PlanState


def _window_later(env, *, enforce: bool, hours_ahead: int = 2):
    """A daily window starting ``hours_ahead`` from now (so that now is outside it), 60 minutes long."""
    start = (timezone.now() + dt.timedelta(hours=hours_ahead)).astimezone(dt.UTC).replace(second=0, microsecond=0)
    data = {name: getattr(env, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(
        window_days=list(range(7)),
        window_start=start.time(),
        window_minutes=60,
        window_timezone="UTC",
        enforce_window=enforce,
    )
    return env_services.save_environment(actor=Actor.system("test"), environment=env, data=data), start


def test_an_enforced_window_refuses_continue_without_a_reason(landscape, release_user, versions):
    prod, _ = _window_later(landscape["Production"], enforce=True)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    with pytest.raises(plans.OutsideWindow, match="Outside the deployment window"):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.PREPARED
    plans.continue_plan(actor=Actor.person(release_user), plan=plan, override_reason="Hotfix for incident 4711")
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    event = AuditEvent.objects.get(action="plan.window_overridden")
    assert (event.actor_name, event.message) == ("release", "Hotfix for incident 4711")
    assert plan.log_lines.filter(level="warning", message__contains="Hotfix for incident 4711").exists()
    assert "outside the window" in plan.transitions.last().reason


def test_a_window_that_is_not_enforced_only_warns(landscape, release_user, versions):
    _window_later(landscape["Production"], enforce=False)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    assert plan.log_lines.filter(
        level="warning", message__startswith="Continued outside the deployment window"
    ).exists()


def test_continue_scheduled_for_the_window_starts_when_its_time_comes(landscape, release_user, versions):
    _, start = _window_later(landscape["Production"], enforce=True)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    DeploymentPlan = type(plan)
    DeploymentPlan.objects.filter(pk=plan.pk).update(prepared_at=timezone.now())
    plans.schedule_continue(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.SCHEDULED
    assert plan.continue_scheduled_at == start and plan.continue_scheduled_by == release_user

    assert plans.run_scheduled_continues(now=start - dt.timedelta(minutes=1)) == []
    with pytest.MonkeyPatch.context() as mp:
        # The beat runs at the window's start: the clock says so too.
        mp.setattr(timezone, "now", lambda: start + dt.timedelta(seconds=5))
        started = plans.run_scheduled_continues()
    assert [p.pk for p in started] == [plan.pk]
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING and plan.continue_scheduled_at is None and plan.continued_by == release_user
    assert Stage.objects.filter(plan=plan, kind="continue").count() == 1
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: start + dt.timedelta(seconds=20))
        assert plans.run_scheduled_continues() == []


def test_a_scheduled_continue_whose_user_lost_the_right_does_not_start_and_says_why(landscape, release_user, versions):
    _, start = _window_later(landscape["Production"], enforce=False)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    type(plan).objects.filter(pk=plan.pk).update(prepared_at=timezone.now())
    plans.schedule_continue(actor=Actor.person(release_user), plan=plan)
    env_services.set_access(
        actor=Actor.system("test"), user=release_user, environment=landscape["Production"], level=AccessLevel.VIEW
    )
    from environments.access import forget

    forget(release_user)
    assert plans.run_scheduled_continues(now=start + dt.timedelta(seconds=5)) == []
    plan.refresh_from_db()
    assert plan.state == S.PREPARED
    assert plan.log_lines.filter(level="error", message__contains="The scheduled Continue did not start").exists()


def test_scheduling_is_refused_when_it_makes_no_sense(landscape, release_user, versions):
    _window_later(landscape["Production"], enforce=True)
    v = versions("hr_core", "1.0.0")
    plan = _prepared(_plan(landscape, release_user, [v]))
    type(plan).objects.filter(pk=plan.pk).update(prepared_at=timezone.now() - dt.timedelta(hours=95))
    with pytest.raises(plans.PlanRefused, match="expires at"):
        plans.schedule_continue(actor=Actor.person(release_user), plan=plan)
    type(plan).objects.filter(pk=plan.pk).update(prepared_at=timezone.now())
    with pytest.raises(plans.OutsideWindow, match="outside Production's deployment window"):
        plans.schedule_continue(
            actor=Actor.person(release_user), plan=plan, at=timezone.now() + dt.timedelta(minutes=30)
        )
    saved = _plan(landscape, release_user, [v], target="Test")
    with pytest.raises(plans.PlanRefused, match="Only a prepared plan"):
        plans.schedule_continue(actor=Actor.person(release_user), plan=saved)


def test_the_plan_page_asks_for_a_reason_and_offers_the_window(client, landscape, release_user, versions):
    _window_later(landscape["Production"], enforce=True)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    type(plan).objects.filter(pk=plan.pk).update(prepared_at=timezone.now())
    client.force_login(release_user)
    url = reverse("deployments:plan", args=[plan.key])
    page = client.get(url).content.decode()
    assert 'name="reason"' in page and "Continue at the window" in page
    refused = client.post(reverse("deployments:plan_continue", args=[plan.key]), follow=True).content.decode()
    assert "Outside the deployment window" in refused
    client.post(reverse("deployments:plan_schedule_continue", args=[plan.key]))
    page = client.get(url).content.decode()
    assert 'id="continue-scheduled"' in page
    client.post(reverse("deployments:plan_cancel_scheduled_continue", args=[plan.key]))
    plan.refresh_from_db()
    assert plan.continue_scheduled_at is None
    client.post(reverse("deployments:plan_continue", args=[plan.key]), {"reason": "customer-approved early window"})
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    assert moves.holder_of(plan.target_id).pk == plan.pk


def test_a_pipeline_continuing_outside_an_enforced_window_gets_400_with_the_reason(landscape, release_user, versions):
    from tests.api.conftest import ApiClient, create_token

    _window_later(landscape["Production"], enforce=True)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    token = create_token(
        "pipeline", {landscape["Production"]: AccessLevel.DEPLOY, landscape["Development"]: AccessLevel.VIEW}
    )
    response = ApiClient(token).post(f"/deployments/{plan.key}/continue")
    assert response.status_code == 400
    assert "Outside the deployment window" in response.json()["Errors"][0]
    plan.refresh_from_db()
    assert plan.state == S.PREPARED
