"""Approvals before Continue, without the engine: who may approve, what voids an approval, what a
rejection blocks, what Continue and the scheduled Continue say, what the pages show.
tests/e2e/test_approvals.py runs the same rules with real workers."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import NotificationDelivery, NotificationEvent, PlanState
from deployments.notifications import services as notifications
from deployments.plans import approvals
from deployments.plans import services as plans
from deployments.state import moves
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import PASSWORD, make_user
from tests.deployments.test_plans import _plan

S = PlanState
SYSTEM = Actor.system("test")


def _ask_approvals(env, needed: int = 1, *, level: int = AccessLevel.DEPLOY):
    data = {name: getattr(env, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(approvals_required=needed, approver_level=level)
    return env_services.save_environment(actor=SYSTEM, environment=env, data=data)


def _prepare(plan, actor: Actor, *, at: dt.datetime | None = None):
    """Move the plan through Prepare as the stage runner does, as ``actor`` (who prepared it)."""
    expected = {S.SAVED} if plan.is_saved else {S.PREPARED, S.SCHEDULED, S.SUSPENDED}
    moves.move_plan(plan, expected=expected, to=S.PREPARING, actor=actor, reason="Prepare Deployment")
    moves.move_plan(
        plan,
        expected={S.PREPARING},
        to=S.PREPARED,
        actor=Actor.system("system"),
        fields={
            "prepared_at": at or timezone.now(),
            "prepared_snapshot": {"running": {}, "frontends": ["fe1", "fe2"], "fingerprints": {}},
        },
    )
    plan.refresh_from_db()
    return plan


@pytest.fixture
def approver(landscape):
    user = make_user("approver")
    env_services.set_access(actor=SYSTEM, user=user, environment=landscape["Production"], level=AccessLevel.DEPLOY)
    return user


@pytest.fixture
def second_approver(landscape):
    user = make_user("second")
    env_services.set_access(actor=SYSTEM, user=user, environment=landscape["Production"], level=AccessLevel.MANAGE)
    return user


@pytest.fixture
def prepared(landscape, release_user, versions):
    _ask_approvals(landscape["Production"], 1)
    plan = _plan(landscape, release_user, [versions("hr_core", "1.0.0")])
    return _prepare(plan, Actor.person(release_user))


def test_the_preparer_cannot_approve_and_continue_waits_for_somebody_else(prepared, release_user, approver):
    with pytest.raises(approvals.ApprovalRefused, match="somebody else must approve"):
        approvals.approve(actor=Actor.person(release_user), plan=prepared)
    with pytest.raises(plans.ApprovalsMissing, match="Continue needs 1 approval from people with the deploy right"):
        plans.continue_plan(actor=Actor.person(release_user), plan=prepared)
    prepared.refresh_from_db()
    assert prepared.state == S.PREPARED

    approvals.approve(actor=Actor.person(approver), plan=prepared, comment="Checked the SQL")
    status = approvals.status_of(prepared)
    assert status.complete and status.approvers == ["approver"]
    assert status.sentence() == "1 of 1 approvals (approver): complete."
    plans.continue_plan(actor=Actor.person(release_user), plan=prepared)
    prepared.refresh_from_db()
    assert prepared.state == S.CONTINUING
    event = AuditEvent.objects.get(action="plan.approved")
    assert (event.actor_name, event.message, event.environment_key) == (
        "approver",
        "Checked the SQL",
        prepared.target.key,
    )
    assert prepared.log_lines.filter(message="Approved by approver: Checked the SQL").exists()


def test_a_viewer_cannot_approve_and_a_second_approval_by_the_same_person_is_a_conflict(prepared, approver, ops_user):
    with pytest.raises(PermissionDenied, match="You need the Deploy right on Production"):
        approvals.approve(actor=Actor.person(ops_user), plan=prepared)
    approvals.approve(actor=Actor.person(approver), plan=prepared)
    with pytest.raises(approvals.AlreadyDecided, match="You already approved"):
        approvals.approve(actor=Actor.person(approver), plan=prepared)
    assert prepared.approvals.count() == 1


def test_an_environment_may_ask_approvers_for_the_manage_right(landscape, prepared, approver, second_approver):
    _ask_approvals(landscape["Production"], 1, level=AccessLevel.MANAGE)
    prepared.refresh_from_db()
    with pytest.raises(PermissionDenied, match="You need the Manage right on Production"):
        approvals.approve(actor=Actor.person(approver), plan=prepared)
    approvals.approve(actor=Actor.person(second_approver), plan=prepared)
    assert approvals.status_of(prepared).complete


def test_prepare_again_voids_the_approvals(prepared, release_user, approver):
    approvals.approve(actor=Actor.person(approver), plan=prepared)
    assert approvals.status_of(prepared).complete
    _prepare(prepared, Actor.person(release_user), at=timezone.now() + dt.timedelta(seconds=1))
    status = approvals.status_of(prepared)
    assert not status.complete and status.counted == [] and status.missing == 1
    with pytest.raises(plans.ApprovalsMissing):
        plans.continue_plan(actor=Actor.person(release_user), plan=prepared)
    # The earlier decision stays, as history.
    assert prepared.approvals.count() == 1


def test_whoever_prepares_again_can_no_longer_approve(prepared, approver, release_user):
    approvals.approve(actor=Actor.person(approver), plan=prepared)
    # The approver prepares again: now the earlier preparer may approve, and the approver may not.
    _prepare(prepared, Actor.person(approver), at=timezone.now() + dt.timedelta(seconds=1))
    with pytest.raises(approvals.ApprovalRefused, match="somebody else"):
        approvals.approve(actor=Actor.person(approver), plan=prepared)
    approvals.approve(actor=Actor.person(release_user), plan=prepared)
    assert approvals.status_of(prepared).approvers == ["release"]


def test_a_withdrawn_approval_no_longer_counts(prepared, approver, release_user):
    approvals.approve(actor=Actor.person(approver), plan=prepared)
    approvals.withdraw(actor=Actor.person(approver), plan=prepared)
    assert not approvals.status_of(prepared).complete
    with pytest.raises(plans.ApprovalsMissing):
        plans.continue_plan(actor=Actor.person(release_user), plan=prepared)
    assert AuditEvent.objects.filter(action="plan.approval_withdrawn", actor_name="approver").exists()
    # Approving again after withdrawing is allowed.
    approvals.approve(actor=Actor.person(approver), plan=prepared)
    assert approvals.status_of(prepared).complete


def test_a_rejection_blocks_continue_until_the_plan_is_prepared_again(
    prepared, approver, second_approver, release_user
):
    approvals.approve(actor=Actor.person(second_approver), plan=prepared)
    approvals.reject(actor=Actor.person(approver), plan=prepared, comment="Not during the sales peak")
    with pytest.raises(plans.ApprovalsMissing, match="Rejected by approver: Not during the sales peak"):
        plans.continue_plan(actor=Actor.person(release_user), plan=prepared)
    with pytest.raises(approvals.ApprovalRefused, match="A rejection stands"):
        approvals.withdraw(actor=Actor.person(approver), plan=prepared)
    assert AuditEvent.objects.get(action="plan.rejected").message == "Not during the sales peak"
    _prepare(prepared, Actor.person(release_user), at=timezone.now() + dt.timedelta(seconds=1))
    approvals.approve(actor=Actor.person(approver), plan=prepared)
    plans.continue_plan(actor=Actor.person(release_user), plan=prepared)
    prepared.refresh_from_db()
    assert prepared.state == S.CONTINUING


def test_two_approvals_need_two_people_and_the_scheduler_does_not_count(
    landscape, prepared, approver, second_approver, release_user
):
    _ask_approvals(landscape["Production"], 2)
    prepared.refresh_from_db()
    approvals.approve(actor=Actor.person(approver), plan=prepared)
    assert approvals.status_of(prepared).missing == 1
    # The approver schedules the Continue: their approval stops counting.
    plans.schedule_continue(actor=Actor.person(approver), plan=prepared, at=timezone.now() + dt.timedelta(hours=1))
    status = approvals.status_of(prepared)
    assert status.missing == 2 and [a.user_name for a in status.not_counted] == ["approver"]
    assert "other than release and approver" in status.sentence()
    approvals.approve(actor=Actor.person(second_approver), plan=prepared)
    assert approvals.status_of(prepared).missing == 1


def test_a_scheduled_continue_waits_for_its_approvals_then_runs(prepared, release_user, approver):
    start = timezone.now() + dt.timedelta(minutes=30)
    plans.schedule_continue(actor=Actor.person(release_user), plan=prepared, at=start)
    assert prepared.log_lines.filter(message__startswith="The scheduled Continue waits for its approvals").exists()
    later = start + dt.timedelta(minutes=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: later)
        assert plans.run_scheduled_continues() == []
        prepared.refresh_from_db()
        assert prepared.state == S.SCHEDULED, "it waits, still scheduled"
        approvals.approve(actor=Actor.person(approver), plan=prepared)
        started = plans.run_scheduled_continues()
    assert [p.pk for p in started] == [prepared.pk]
    prepared.refresh_from_db()
    assert prepared.state == S.CONTINUING


def test_a_rejection_cancels_a_scheduled_continue(prepared, release_user, approver):
    plans.schedule_continue(
        actor=Actor.person(release_user), plan=prepared, at=timezone.now() + dt.timedelta(minutes=30)
    )
    approvals.reject(actor=Actor.person(approver), plan=prepared, comment="no")
    prepared.refresh_from_db()
    assert prepared.state == S.PREPARED and prepared.continue_scheduled_at is None
    assert prepared.transitions.last().reason == "Scheduled Continue cancelled: rejected by approver"


def test_approvals_need_deployments_in_two_stages(landscape):
    with pytest.raises(env_services.InvalidInput, match="need deployments in two stages"):
        _ask_approvals(landscape["Test"], 1)


def test_an_environment_without_approvals_refuses_an_approval_and_continues_as_before(
    landscape, release_user, approver, versions
):
    plan = _prepare(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]), Actor.person(release_user))
    with pytest.raises(approvals.ApprovalRefused, match="needs no approval"):
        approvals.approve(actor=Actor.person(approver), plan=plan)
    plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING


def test_approvers_hear_that_a_plan_waits_for_them_and_when_all_approvals_are_in(
    landscape, release_user, approver, versions, django_capture_on_commit_callbacks
):
    env = _ask_approvals(landscape["Production"], 1)
    notifications.save_rule(
        actor=SYSTEM,
        environment=env,
        kind="email",
        target="approvers@example.com",
        events=[NotificationEvent.APPROVAL_NEEDED, NotificationEvent.APPROVED, NotificationEvent.REJECTED],
    )
    plan = _plan(landscape, release_user, [versions("hr_core", "1.0.0")])
    with django_capture_on_commit_callbacks(execute=True):
        _prepare(plan, Actor.person(release_user))
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approve(actor=Actor.person(approver), plan=plan, comment="go")
    events = list(NotificationDelivery.objects.filter(plan=plan).order_by("id").values_list("event", "payload"))
    assert [e for e, _ in events] == [NotificationEvent.APPROVAL_NEEDED, NotificationEvent.APPROVED]
    assert events[1][1]["reason"] == "1 of 1 approvals (approver): complete."


def test_the_plan_page_shows_who_approved_and_offers_the_buttons_to_approvers_only(
    client, prepared, approver, release_user
):
    url = reverse("deployments:plan", args=[prepared.key])
    client.login(username="release", password=PASSWORD)
    page = client.get(url).content.decode()
    assert "0 of 1 approvals: waiting for 1 more" in page and 'id="approve"' not in page

    client.login(username="approver", password=PASSWORD)
    page = client.get(url).content.decode()
    assert 'id="approve"' in page and 'id="reject"' in page
    response = client.post(
        reverse("deployments:plan_approve", args=[prepared.key]), {"decision": "approve", "comment": "LGTM"}
    )
    assert response.status_code == 302
    page = client.get(url).content.decode()
    assert "1 of 1 approvals (approver): complete." in page and "LGTM" in page and 'id="withdraw-approval"' in page

    board = client.get(reverse("deployments:board")).content.decode()
    assert "1 of 1 approvals (approver): complete." in board

    client.post(reverse("deployments:plan_withdraw_approval", args=[prepared.key]))
    assert "0 of 1 approvals" in client.get(url).content.decode()


def test_an_infra_admin_asks_for_approvals_on_the_environment_page(client, landscape, admin_user):
    env = landscape["Production"]
    client.login(username="admin", password=PASSWORD)
    form = client.get(reverse("environments:edit", args=[env.key])).context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update(
        window_start="02:00", window_days=list(range(7)), approvals_required=2, approver_level=AccessLevel.MANAGE
    )
    response = client.post(reverse("environments:edit", args=[env.key]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    env.refresh_from_db()
    assert (env.approvals_required, env.approver_level) == (2, AccessLevel.MANAGE)
    page = client.get(reverse("environments:detail", args=[env.key])).content.decode()
    assert "2, from people with the manage right" in page
    changed = AuditEvent.objects.filter(action="environment.changed").last()
    assert changed.changes["approvals_required"] == [0, 2]
