"""Freezes and several windows where plans meet them: Continue, Deploy Now and the scheduled
Continue refuse during a freeze; a user with the manage right overrides it with a reason, audited;
the environment page and the board show the next window and the freeze."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import PlanState
from deployments.plans import services as plans
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import PASSWORD, make_user
from tests.deployments.test_plans import _plan, _prepared

S = PlanState
SYSTEM = Actor.system("test")


def _freeze_now(env, reason="Black Friday"):
    now = timezone.now()
    return env_services.add_freeze(
        actor=SYSTEM,
        environment=env,
        reason=reason,
        starts_at=now - dt.timedelta(hours=1),
        ends_at=now + dt.timedelta(hours=5),
    )


@pytest.fixture
def manager(landscape):
    user = make_user("manager")
    for env in landscape.values():
        env_services.set_access(actor=SYSTEM, user=user, environment=env, level=AccessLevel.MANAGE)
    return user


def test_a_freeze_blocks_continue_and_only_a_manager_overrides_it_with_a_reason(
    landscape, release_user, manager, versions
):
    prod = landscape["Production"]
    _freeze_now(prod)
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    with pytest.raises(plans.Frozen, match="Production is frozen from .*: Black Friday"):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    with pytest.raises(plans.Frozen, match="Only a user with the manage right on Production may continue now."):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan, override_reason="urgent")
    plan.refresh_from_db()
    assert plan.state == S.PREPARED

    plans.continue_plan(actor=Actor.person(manager), plan=plan, override_reason="Payment outage fix, INC-99")
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    event = AuditEvent.objects.get(action="plan.freeze_overridden")
    assert event.actor_name == "manager" and "Reason: Payment outage fix, INC-99" in event.message
    assert "Black Friday" in event.message
    assert plan.log_lines.filter(level="warning", message__contains="during a freeze").exists()
    assert "during a freeze: Payment outage fix, INC-99" in plan.transitions.last().reason


def test_a_freeze_blocks_deploy_now_on_a_one_stage_target(landscape, release_user, manager, versions):
    test = landscape["Test"]
    _freeze_now(test, "release train frozen")
    plan = _plan(landscape, release_user, [versions("hr_core", "1.0.0")], target="Test")
    with pytest.raises(plans.Frozen, match="release train frozen"):
        plans.start_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.SAVED
    plans.start_plan(actor=Actor.person(manager), plan=plan, override_reason="security patch")
    plan.refresh_from_db()
    assert plan.state == S.PREPARING
    assert AuditEvent.objects.filter(action="plan.freeze_overridden", actor_name="manager").exists()


def test_prepare_is_not_blocked_by_a_freeze(landscape, release_user, versions):
    _freeze_now(landscape["Production"])
    plan = _plan(landscape, release_user, [versions("hr_core", "1.0.0")])
    plans.start_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.PREPARING


def test_a_scheduled_continue_whose_time_falls_in_a_freeze_does_not_start(landscape, release_user, versions):
    prod = landscape["Production"]
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    type(plan).objects.filter(pk=plan.pk).update(prepared_at=timezone.now())
    at = timezone.now() + dt.timedelta(minutes=10)
    plans.schedule_continue(actor=Actor.person(release_user), plan=plan, at=at)
    # A freeze is declared afterwards, over the scheduled time.
    _freeze_now(prod, "incident review")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: at + dt.timedelta(seconds=5))
        assert plans.run_scheduled_continues() == []
    plan.refresh_from_db()
    assert plan.state == S.PREPARED
    assert "incident review" in plan.transitions.last().reason
    assert plan.log_lines.filter(level="error", message__contains="did not start").exists()
    # Scheduling into the freeze is refused outright.
    with pytest.raises(plans.Frozen, match="is in a freeze"):
        plans.schedule_continue(actor=Actor.person(release_user), plan=plan, at=at)


def test_continue_at_the_window_skips_windows_in_a_freeze(landscape, release_user, versions):
    prod = landscape["Production"]
    now = timezone.now()
    # Every window of the next three days frozen.
    env_services.add_freeze(
        actor=SYSTEM, environment=prod, reason="migration weekend", starts_at=now, ends_at=now + dt.timedelta(days=3)
    )
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    type(plan).objects.filter(pk=plan.pk).update(prepared_at=timezone.now())
    plans.schedule_continue(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.continue_scheduled_at >= now + dt.timedelta(days=3)
    assert plan.continue_scheduled_at.astimezone(dt.UTC).time() == dt.time(2, 0)


def test_a_further_window_counts_for_continue(landscape, release_user, versions):
    prod = landscape["Production"]
    data = {name: getattr(prod, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(enforce_window=True)
    prod = env_services.save_environment(actor=SYSTEM, environment=prod, data=data)
    now = timezone.now()
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    if prod.window_open(now):
        pytest.skip("the 02:00 window is open now")
    with pytest.raises(plans.OutsideWindow):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    start = (now - dt.timedelta(minutes=5)).astimezone(dt.UTC)
    env_services.add_window(
        actor=SYSTEM,
        environment=prod,
        days=list(range(7)),
        start=start.time().replace(second=0, microsecond=0),
        minutes=60,
        timezone_name="UTC",
    )
    prod.refresh_from_db()
    assert prod.window_open(now)
    assert "; " in prod.window_label()
    plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING


def test_managers_add_windows_and_freezes_on_the_environment_page_and_the_board_shows_them(
    client, landscape, manager, release_user
):
    prod = landscape["Production"]
    url = reverse("environments:detail", args=[prod.key])
    client.login(username="release", password=PASSWORD)
    assert 'id="add-freeze"' not in client.get(url).content.decode()
    assert client.post(reverse("environments:freeze_add", args=[prod.key]), {"reason": "x"}).status_code == 403

    client.login(username="manager", password=PASSWORD)
    response = client.post(
        reverse("environments:freeze_add", args=[prod.key]),
        {"reason": "Month-end closing", "week": "-1", "weekday": "4", "timezone": "Europe/Lisbon"},
    )
    assert response.status_code == 302
    response = client.post(
        reverse("environments:window_add", args=[prod.key]),
        {"days": ["5"], "start": "10:00", "minutes": "240", "timezone": "Europe/Lisbon"},
    )
    assert response.status_code == 302
    page = client.get(url).content.decode()
    assert "the last Friday of every month (Europe/Lisbon)" in page and "Month-end closing" in page
    assert "10:00–14:00 Europe/Lisbon, Sat" in page
    assert 'id="next-window"' in page
    actions = set(AuditEvent.objects.filter(environment_key=prod.key).values_list("action", flat=True))
    assert {"environment.freeze_added", "environment.window_added"} <= actions

    _freeze_now(prod, "Black Friday")
    board = client.get(reverse("deployments:board")).content.decode()
    assert "Black Friday" in board
