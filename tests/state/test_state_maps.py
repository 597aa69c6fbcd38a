"""The two state maps, move by move: every allowed move of a plan and of a stage is performed by
the state module (compare-and-set, history row), every other one is refused. No Celery here."""

from __future__ import annotations

import itertools

import pytest

from core.actors import Actor
from deployments.models import DeploymentPlan, Stage, StageKind
from deployments.state import machine, moves
from deployments.state.machine import PlanState, StageState

P = PlanState
T = StageState
SYSTEM = Actor.system("test")

# The moves people expect, written out once more here, independently of the code under test.
PLAN_MOVES = {
    (P.SAVED, P.PREPARING),  # Prepare Deployment / Deploy Now
    (P.SAVED, P.QUEUED),  # started while the target is held, the target queueing plans
    (P.QUEUED, P.PREPARING),  # its turn in the queue
    (P.QUEUED, P.ABORTED),  # Abort while queued
    (P.PREPARING, P.PREPARED),  # Prepare finished on a two-stage target
    (P.PREPARING, P.CONTINUING),  # Deploy Now: Continue follows at once
    (P.PREPARING, P.SUSPENDED),
    (P.PREPARING, P.ABORTING),
    (P.PREPARING, P.ABORTED),  # aborted before a worker took the stage
    (P.PREPARING, P.FINISHED_WITH_ERRORS),
    (P.PREPARED, P.PREPARING),  # Prepare Again
    (P.PREPARED, P.CONTINUING),  # Continue Deployment
    (P.PREPARED, P.SCHEDULED),
    (P.PREPARED, P.ABORTED),  # Abort, or expiry
    (P.SCHEDULED, P.PREPARED),  # schedule cancelled, or the scheduled Continue could not start
    (P.SCHEDULED, P.PREPARING),
    (P.SCHEDULED, P.CONTINUING),
    (P.SCHEDULED, P.ABORTED),
    (P.SUSPENDED, P.PREPARING),
    (P.SUSPENDED, P.CONTINUING),
    (P.SUSPENDED, P.ABORTED),
    (P.CONTINUING, P.APPLYING),  # the point of no return
    (P.CONTINUING, P.SUSPENDED),
    (P.CONTINUING, P.ABORTING),
    (P.CONTINUING, P.ABORTED),
    (P.CONTINUING, P.FINISHED_WITH_ERRORS),
    (P.APPLYING, P.FINISHED_SUCCESSFUL),
    (P.APPLYING, P.FINISHED_WITH_WARNINGS),
    (P.APPLYING, P.FINISHED_WITH_ERRORS),
    (P.ABORTING, P.ABORTED),
    (P.ABORTED, P.SAVED),  # Retry
    (P.FINISHED_SUCCESSFUL, P.ROLLING_BACK),  # Roll Back
    (P.FINISHED_WITH_WARNINGS, P.ROLLING_BACK),
    (P.FINISHED_WITH_ERRORS, P.ROLLING_BACK),
    (P.ROLLING_BACK, P.ROLLED_BACK),
    # A failed Roll Back put the plan's releases back: finished as it was.
    (P.ROLLING_BACK, P.FINISHED_SUCCESSFUL),
    (P.ROLLING_BACK, P.FINISHED_WITH_WARNINGS),
    (P.ROLLING_BACK, P.FINISHED_WITH_ERRORS),
}
STAGE_MOVES = {
    (T.QUEUED, T.RUNNING),
    (T.QUEUED, T.CANCELLED),
    (T.RUNNING, T.SUCCEEDED),
    (T.RUNNING, T.FAILED),
    (T.RUNNING, T.ERRORED),
    (T.RUNNING, T.CANCELLED),
}
ALL_PLAN_PAIRS = list(itertools.product(P, P))
ALL_STAGE_PAIRS = list(itertools.product(T, T))


def test_the_plan_map_is_exactly_the_moves_people_expect():
    assert {pair for pair in ALL_PLAN_PAIRS if machine.plan_may_move(*pair)} == PLAN_MOVES


def test_the_stage_map_is_exactly_the_moves_people_expect():
    assert {pair for pair in ALL_STAGE_PAIRS if machine.stage_may_move(*pair)} == STAGE_MOVES


def test_final_states_lead_nowhere_but_a_retry_of_an_aborted_plan_or_a_roll_back_of_a_finished_one():
    for state in machine.FINAL:
        expected = {P.SAVED} if state == P.ABORTED else {P.ROLLING_BACK} if state in machine.FINISHED else set()
        assert {to for to in P if machine.plan_may_move(state, to)} == expected


def test_the_questions_people_ask():
    assert {s for s in P if machine.holds_target(s)} == {
        P.PREPARING,
        P.PREPARED,
        P.SCHEDULED,
        P.SUSPENDED,
        P.CONTINUING,
        P.APPLYING,
        P.ABORTING,
        P.ROLLING_BACK,
    }
    assert {s for s in P if machine.may_roll_back(s)} == set(machine.FINISHED)
    assert {s for s in P if machine.may_abort(s)} == {
        P.QUEUED,
        P.PREPARING,
        P.PREPARED,
        P.SCHEDULED,
        P.SUSPENDED,
        P.CONTINUING,
    }
    assert {s for s in P if machine.may_continue(s)} == {P.PREPARED, P.SCHEDULED, P.SUSPENDED}
    assert {s for s in P if machine.is_prepared(s)} == {P.PREPARED, P.SCHEDULED}
    assert {s for s in P if machine.past_point_of_no_return(s)} == {P.APPLYING}
    # Every state that may abort can reach aborting or aborted in one move.
    for state in machine.ABORTABLE:
        assert machine.plan_may_move(state, P.ABORTED) or machine.plan_may_move(state, P.ABORTING)


def test_lifetime_words_are_derived_from_the_state():
    assert machine.api_status(P.PREPARED) == ("needs_user_intervention", "deployment_prepared")
    assert machine.api_status(P.SCHEDULED) == ("needs_user_intervention", "deployment_prepared")
    assert machine.api_status(P.SUSPENDED) == ("needs_user_intervention", "deployment_suspended")
    for state in (P.PREPARING, P.CONTINUING, P.APPLYING, P.ROLLING_BACK):
        assert machine.api_status(state) == ("running", "")
    # A queued plan is "running" with Info "queued": LifeTime's clients read any other status as the end.
    assert machine.api_status(P.QUEUED) == ("running", "queued")
    assert machine.states_for_api_status("running") == {
        P.QUEUED,
        P.PREPARING,
        P.CONTINUING,
        P.APPLYING,
        P.ROLLING_BACK,
    }
    assert machine.api_status(P.ROLLED_BACK) == ("rolled_back", "")
    for state in P:
        status, info = machine.api_status(state)
        assert status in machine.ApiStatus.values and (info == "" or info in machine.ApiInfo.values)


# --- performed on real rows -----------------------------------------------------------------------


@pytest.fixture
def plan_in(db):
    from deployments.plans import services as plans
    from environments import services as env_services

    # Two bare environments (no application database, no front-end): a plan's state needs no more.
    source, target = (
        env_services.save_environment(actor=SYSTEM, data={"name": name, "order": order, "kind": name})
        for order, name in enumerate(["Development", "Test"], start=1)
    )

    def make(state: str) -> DeploymentPlan:
        plan = plans.create_plan(actor=SYSTEM, source=source, target=target, operations=[])
        # Put the row in the state under test, as a fixture may: the moves below are what is tested.
        DeploymentPlan.objects.filter(pk=plan.pk).update(state=state)
        plan.refresh_from_db()
        return plan

    return make


@pytest.mark.parametrize(("source", "to"), sorted(PLAN_MOVES))
def test_every_allowed_plan_move_is_performed_with_its_history_row(plan_in, source, to):
    plan = plan_in(source)
    moves.move_plan(plan, expected={source}, to=to, actor=SYSTEM, reason=f"{source} to {to}")
    assert plan.state == to
    row = plan.transitions.get()
    assert (row.from_state, row.to_state, row.actor_name, row.reason) == (source, to, "test", f"{source} to {to}")
    assert (plan.finished_at is not None) == machine.is_final(to)


@pytest.mark.parametrize(("source", "to"), sorted(set(ALL_PLAN_PAIRS) - PLAN_MOVES))
def test_every_other_plan_move_is_refused_and_changes_nothing(plan_in, source, to):
    plan = plan_in(source)
    with pytest.raises(ValueError, match="not a move"):
        moves.move_plan(plan, expected={source}, to=to, actor=SYSTEM)
    plan.refresh_from_db()
    assert plan.state == source and not plan.transitions.exists()


def test_a_move_from_a_state_the_plan_has_left_is_lost(plan_in):
    plan = plan_in(P.PREPARED)
    moves.move_plan(plan, expected={P.PREPARED}, to=P.CONTINUING, actor=SYSTEM)
    stale = DeploymentPlan.objects.get(pk=plan.pk)
    stale.state = P.PREPARED  # what a second click read a moment ago
    with pytest.raises(moves.TransitionLost):
        moves.move_plan(stale, expected={P.PREPARED}, to=P.ABORTED, actor=SYSTEM)
    assert DeploymentPlan.objects.get(pk=plan.pk).state == P.CONTINUING


def test_listeners_hear_committed_moves_and_their_failures_never_reach_the_mover(
    plan_in, django_capture_on_commit_callbacks
):
    heard: list[moves.PlanMove] = []

    def listener(move: moves.PlanMove) -> None:
        heard.append(move)

    def broken(move: moves.PlanMove) -> None:
        raise RuntimeError("a broken listener")

    moves.on_plan_move(broken)
    moves.on_plan_move(listener)
    try:
        plan = plan_in(P.SAVED)
        with django_capture_on_commit_callbacks(execute=True):
            moves.move_plan(plan, expected={P.SAVED}, to=P.PREPARING, actor=SYSTEM, reason="go")
        assert [(m.plan_id, m.source, m.to, m.reason) for m in heard] == [(plan.pk, P.SAVED, P.PREPARING, "go")]
    finally:
        moves._listeners.remove(broken)
        moves._listeners.remove(listener)


@pytest.fixture
def stage_in(plan_in):
    def make(status: str) -> Stage:
        stage = Stage.objects.create(plan=plan_in(P.PREPARING), kind=StageKind.PREPARE)
        Stage.objects.filter(pk=stage.pk).update(status=status)
        stage.refresh_from_db()
        return stage

    return make


@pytest.mark.parametrize("to", [T.SUCCEEDED, T.FAILED, T.ERRORED, T.CANCELLED])
def test_a_running_stage_ends_once(stage_in, to):
    stage = stage_in(T.RUNNING)
    assert moves.finish_stage(stage, to, explanation="why")
    assert not moves.finish_stage(stage, T.SUCCEEDED)  # it already ended: nothing changes
    stage.refresh_from_db()
    assert (stage.status, stage.explanation) == (to, "why") and stage.finished_at is not None


def test_a_queued_stage_is_claimed_once_or_cancelled(stage_in):
    stage = stage_in(T.QUEUED)
    assert moves.claim_stage(stage.pk, task_id="t1", worker="w1") is not None
    assert moves.claim_stage(stage.pk, task_id="t2", worker="w2") is None  # a redelivered message
    other = Stage.objects.create(plan=stage.plan, kind=StageKind.CONTINUE)
    assert moves.cancel_queued_stages(other.plan, explanation="Aborted before it started.") == 1
    assert moves.claim_stage(other.pk) is None


@pytest.mark.parametrize("source", [s for s in T if s != T.RUNNING])
def test_only_a_running_stage_can_end(stage_in, source):
    stage = stage_in(source)
    assert not moves.finish_stage(stage, T.SUCCEEDED)
    stage.refresh_from_db()
    assert stage.status == source


@pytest.mark.parametrize("to", [T.QUEUED, T.RUNNING])
def test_a_stage_cannot_end_in_a_state_that_is_not_an_end(stage_in, to):
    stage = stage_in(T.RUNNING)
    with pytest.raises(ValueError):
        moves.finish_stage(stage, to)
    stage.refresh_from_db()
    assert stage.status == T.RUNNING


def test_a_refusal_no_view_caught_is_a_sentence_on_the_page_not_a_500(rf, release_user):
    from django.contrib.messages.storage.fallback import FallbackStorage

    from core.middleware import RefusalMiddleware
    from core.refusals import Conflict, Refusal

    middleware = RefusalMiddleware(lambda request: None)
    request = rf.get("/plans/")
    request.user = release_user
    response = middleware.process_exception(request, Conflict("The deployment is already running."))
    assert response.status_code == 409 and b"The deployment is already running." in response.content

    # A button pressed on a page of the console: back to that page, the reason shown there.
    request = rf.post("/plans/x/continue/", HTTP_REFERER="http://testserver/plans/x/")
    request.session = {}
    request._messages = FallbackStorage(request)
    response = middleware.process_exception(request, Refusal("Outside the deployment window."))
    assert response.status_code == 302 and response["Location"] == "http://testserver/plans/x/"
    assert [m.message for m in request._messages] == ["Outside the deployment window."]
    # Anything else is not a refusal: left to Django.
    assert middleware.process_exception(request, RuntimeError("bug")) is None


def test_a_stage_and_the_move_it_ends_with_happen_together_or_not_at_all(stage_in):
    stage = stage_in(T.RUNNING)
    plan = stage.plan
    moves.complete_stage(stage, plan, expected={P.PREPARING}, to=P.PREPARED, actor=SYSTEM, reason="done")
    stage.refresh_from_db()
    assert (stage.status, plan.state) == (T.SUCCEEDED, P.PREPARED)

    # A stage the reaper declared lost meanwhile cannot end its plan's move.
    lost = Stage.objects.create(plan=plan, kind=StageKind.CONTINUE)
    Stage.objects.filter(pk=lost.pk).update(status=T.ERRORED)
    moves.move_plan(plan, expected={P.PREPARED}, to=P.CONTINUING, actor=SYSTEM)
    with pytest.raises(moves.TransitionLost):
        moves.complete_stage(lost, plan, expected={P.CONTINUING}, to=P.SUSPENDED, actor=SYSTEM)
    plan.refresh_from_db()
    assert plan.state == P.CONTINUING
