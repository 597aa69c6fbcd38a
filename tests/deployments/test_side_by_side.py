"""Plans side by side on one environment, and the queue of plans started while it is held.

Without the engine: a start moves the plan and queues its stage, which is what is asserted here;
tests/e2e/test_side_by_side.py runs the plans for real.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from core.actors import Actor
from deployments.models import DeploymentPlan, MobileAppConfig, PlanState, RunningVersion
from deployments.plans import services as plans
from deployments.state import moves
from environments import services as env_services

S = PlanState


@pytest.fixture
def prod(landscape):
    return landscape["Production"]


def allow(environment, *, at_once: int, queue: bool) -> None:
    """The environment's settings changed through the service, as its form does."""
    data = {name: getattr(environment, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(concurrent_plans=at_once, queue_plans=queue)
    env_services.save_environment(actor=Actor.system("test"), environment=environment, data=data)
    environment.refresh_from_db()


@pytest.fixture
def apps(landscape, prod, versions):
    """hr_core, field_inspector (mobile, configured in Production) and leave_portal (depends on hr_core)."""
    hr = versions("hr_core", "1.0.0")
    mobile = versions("field_inspector", "1.0.0")
    portal = versions("leave_portal", "1.0.0")
    MobileAppConfig.objects.create(
        environment=prod, application=mobile.application, app_identifier="com.example.fi", server_url="https://p"
    )
    RunningVersion.objects.create(environment=prod, application=hr.application, version=hr, since=timezone.now())
    return {"hr": hr, "mobile": mobile, "portal": portal}


def plan_of(landscape, user, *versions):
    return plans.create_plan(
        actor=Actor.person(user),
        source=landscape["Development"],
        target=landscape["Production"],
        operations=[plans.Operation(v.application, v) for v in versions],
    )


def start(user, plan) -> DeploymentPlan:
    plans.start_plan(actor=Actor.person(user), plan=plan)
    plan.refresh_from_db()
    return plan


def test_plans_sharing_no_application_and_no_dependency_hold_one_environment_together(
    landscape, prod, apps, release_user
):
    allow(prod, at_once=2, queue=False)
    first = start(release_user, plan_of(landscape, release_user, apps["hr"]))
    second = start(release_user, plan_of(landscape, release_user, apps["mobile"]))
    assert (first.state, second.state) == (S.PREPARING, S.PREPARING)
    assert [p.pk for p in moves.holders_of(prod.pk)] == [first.pk, second.pk]


def test_a_plan_sharing_a_dependency_is_refused_and_says_what_is_shared(landscape, prod, apps, release_user):
    allow(prod, at_once=5, queue=False)
    first = start(release_user, plan_of(landscape, release_user, apps["hr"]))
    third = plan_of(landscape, release_user, apps["portal"])  # leave_portal depends on hr_core
    with pytest.raises(moves.TargetHeld, match=f"Plan {first.key} .*hr_core"):
        plans.start_plan(actor=Actor.person(release_user), plan=third)
    third.refresh_from_db()
    assert third.state == S.SAVED


def test_the_limit_of_plans_at_once_holds_and_one_stays_the_default(landscape, prod, apps, release_user):
    start(release_user, plan_of(landscape, release_user, apps["hr"]))
    with pytest.raises(moves.TargetHeld):
        plans.start_plan(actor=Actor.person(release_user), plan=plan_of(landscape, release_user, apps["mobile"]))


def test_a_plan_started_while_the_target_is_held_waits_in_the_queue_and_starts_when_it_is_free(
    landscape, prod, apps, release_user, django_capture_on_commit_callbacks
):
    allow(prod, at_once=1, queue=True)
    first = start(release_user, plan_of(landscape, release_user, apps["hr"]))
    waiting = start(release_user, plan_of(landscape, release_user, apps["mobile"]))
    assert waiting.state == S.QUEUED and waiting.api_status == "running" and waiting.api_info == "queued"
    assert plans.queue_position(waiting) == 1 and not waiting.stages.exists()
    assert "Queued" in waiting.transitions.get().reason
    with django_capture_on_commit_callbacks(execute=True):
        plans.abort_plan(actor=Actor.person(release_user), plan=first)
    waiting.refresh_from_db()
    assert waiting.state == S.PREPARING and list(waiting.stages.values_list("kind", flat=True)) == ["prepare"]
    assert waiting.transitions.order_by("at", "id").last().actor_name == "queue"


def test_the_queue_is_first_in_first_out_for_plans_that_share_applications(
    landscape, prod, apps, release_user, django_capture_on_commit_callbacks
):
    allow(prod, at_once=2, queue=True)
    holder = start(release_user, plan_of(landscape, release_user, apps["hr"]))
    # Shares hr_core with the holder: queued.
    portal = start(release_user, plan_of(landscape, release_user, apps["portal"]))
    # Would fit beside the holder, but must not overtake the earlier queued plan with hr_core.
    hr_again = start(release_user, plan_of(landscape, release_user, apps["hr"]))
    # Shares nothing with anyone: starts beside the holder at once.
    mobile = start(release_user, plan_of(landscape, release_user, apps["mobile"]))
    assert (portal.state, hr_again.state, mobile.state) == (S.QUEUED, S.QUEUED, S.PREPARING)
    assert [plans.queue_position(portal), plans.queue_position(hr_again)] == [1, 2]
    with django_capture_on_commit_callbacks(execute=True):
        plans.abort_plan(actor=Actor.person(release_user), plan=holder)
    portal.refresh_from_db()
    hr_again.refresh_from_db()
    assert (portal.state, hr_again.state) == (S.PREPARING, S.QUEUED)
    assert plans.queue_position(hr_again) == 1


def test_a_queued_plan_aborts_at_once(landscape, prod, apps, release_user):
    allow(prod, at_once=1, queue=True)
    start(release_user, plan_of(landscape, release_user, apps["hr"]))
    waiting = start(release_user, plan_of(landscape, release_user, apps["mobile"]))
    plans.abort_plan(actor=Actor.person(release_user), plan=waiting)
    waiting.refresh_from_db()
    assert waiting.state == S.ABORTED


def test_beat_starts_queued_plans_whose_moment_was_missed(landscape, prod, apps, release_user):
    allow(prod, at_once=1, queue=True)
    first = start(release_user, plan_of(landscape, release_user, apps["hr"]))
    waiting = start(release_user, plan_of(landscape, release_user, apps["mobile"]))
    # The abort's listener never runs here (no commit in this test's transaction): beat catches it.
    plans.abort_plan(actor=Actor.person(release_user), plan=first)
    assert [p.pk for p in plans.start_all_queued_plans()] == [waiting.pk]
    waiting.refresh_from_db()
    assert waiting.state == S.PREPARING


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_of_plans_sharing_an_application_let_one_hold_the_target(landscape, prod, apps, release_user):
    allow(prod, at_once=3, queue=False)
    contenders = [plan_of(landscape, release_user, apps["hr"]) for _ in range(3)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(contenders))

    def attempt(plan):
        try:
            barrier.wait()
            plans.start_plan(actor=Actor.person(release_user), plan=DeploymentPlan.objects.get(pk=plan.pk))
            outcomes.append("started")
        except moves.TargetHeld:
            outcomes.append("held")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(plan,)) for plan in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["held", "held", "started"]
    assert len(moves.holders_of(prod.pk)) == 1


def test_the_board_and_the_plan_page_show_plans_side_by_side_and_the_queue(client, landscape, prod, apps, release_user):
    allow(prod, at_once=2, queue=True)
    first = start(release_user, plan_of(landscape, release_user, apps["hr"]))
    beside = start(release_user, plan_of(landscape, release_user, apps["mobile"]))
    waiting = start(release_user, plan_of(landscape, release_user, apps["portal"]))
    client.force_login(release_user)
    board = client.get("/board/").content.decode()
    section = board[board.index(f'id="env-{prod.key}"') :]
    section = section[: section.index("</section>")]
    assert str(first.key) in section and str(beside.key) in section and "side by side" in section
    assert "Queue (1)" in section and str(waiting.key) in section
    page = client.get(f"/plans/{waiting.key}/").content.decode()
    assert "number 1 in Production" in page
