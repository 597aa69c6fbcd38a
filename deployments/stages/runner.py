"""Runs one stage: claim it, keep a heartbeat, run Prepare or Continue, map every ending to a status.

A stage never stays ``running``: a known failure (StepFailed) becomes a failed stage with the
sentence people read; anything else an errored stage with the traceback kept for developers; a
worker that dies is caught by the reaper through the stale heartbeat. Every status of the stage and
every state of the plan is written through the state module.
"""

from __future__ import annotations

import logging
import traceback

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from core.actors import Actor
from deployments.models import DeploymentPlan, Stage, StageKind
from deployments.stages.continuation import run_continue
from deployments.stages.lease import Lease
from deployments.stages.log import append_log
from deployments.stages.prepare import run_prepare
from deployments.stages.rollback import fail_rollback, run_rollback
from deployments.stages.stop import StageAborted
from deployments.state import machine, moves
from deployments.state.machine import PlanState, StageState
from deployments.steps import StepFailed
from environments import access
from environments.models import AccessLevel

logger = logging.getLogger(__name__)
P = PlanState
RUNNER = Actor.system("stage runner")

# How long a new attempt waits for the plan's lease: the database lets go of a dead attempt's
# lease as soon as it notices the connection is gone.
LEASE_WAIT_SECONDS = getattr(settings, "STAGE_LEASE_WAIT_SECONDS", 30)


def run(stage_id: int, *, task_id: str = "", worker: str = "") -> str | None:
    close_old_connections()
    plan_id = Stage.objects.filter(pk=stage_id, status=StageState.QUEUED).values_list("plan_id", flat=True).first()
    if plan_id is None:
        logger.info("stage %s already claimed: nothing to do", stage_id)
        return None
    # The lease first, then the claim: from its first running moment the attempt's life is a fact
    # the database knows (see deployments.stages.lease).
    lease = Lease(stage_id=stage_id, plan_id=plan_id)
    if not lease.acquire(timeout_s=LEASE_WAIT_SECONDS):
        logger.warning("stage %s: another attempt of plan %s still holds its lease; left queued", stage_id, plan_id)
        return None
    try:
        stage = moves.claim_stage(stage_id, task_id=task_id, worker=worker, lease_pid=lease.pid)
    except BaseException:
        lease.__exit__(None, None, None)
        raise
    if stage is None:
        lease.__exit__(None, None, None)
        logger.info("stage %s already claimed: nothing to do", stage_id)
        return None
    with lease, moves.attempt(stage):
        return _run_attempt(stage)


def _run_attempt(stage: Stage) -> str | None:
    plan = stage.plan
    try:
        if plan.state == P.ABORTING:
            raise StageAborted()
        requester = stage.requested_by
        if requester is not None and not access.can(requester, plan.target, AccessLevel.DEPLOY):
            raise StepFailed(f"{requester.username} no longer has the deploy right on {plan.target.name}.")
        # Each stage ends with its plan's move and its own success in one transaction.
        try:
            if stage.kind == StageKind.PREPARE:
                run_prepare(stage)
            elif stage.kind == StageKind.ROLLBACK:
                run_rollback(stage)
            else:
                run_continue(stage)
        except moves.TransitionLost as exc:
            # The plan's last move was lost to an Abort that came in meanwhile: stop as aborted.
            if exc.current == P.ABORTING:
                raise StageAborted() from None
            raise
        return StageState.SUCCEEDED
    except moves.StaleAttempt:
        return _stale(stage)
    except StageAborted:
        if not moves.finish_stage(stage, StageState.CANCELLED, explanation="Aborted."):
            return _stale(stage)
        append_log(plan, "warning", f"{stage.get_kind_display()} stopped: the plan was aborted.")
        with moves.ended_attempt():
            _move(plan, expected={P.ABORTING}, to=P.ABORTED, reason="Aborted", fields={"aborted_at": timezone.now()})
        return StageState.CANCELLED
    except StepFailed as exc:
        if not moves.finish_stage(stage, StageState.FAILED, explanation=exc.message):
            return _stale(stage)
        append_log(plan, "error", exc.message)
        with moves.ended_attempt():
            fail_plan(plan, exc.message, suspend=exc.suspend)
        return StageState.FAILED
    except Exception as exc:  # anything else is a bug: keep the traceback for developers
        logger.exception("stage %s errored", stage.pk)
        sentence = (
            f"{stage.get_kind_display()} stopped on an unexpected error ({exc.__class__.__name__}); "
            "the developers' traceback is kept on the stage."
        )
        if not moves.finish_stage(stage, StageState.ERRORED, explanation=sentence, traceback=traceback.format_exc()):
            return _stale(stage)
        append_log(plan, "error", sentence)
        with moves.ended_attempt():
            fail_plan(plan, sentence, suspend=False)
        return StageState.ERRORED


def _stale(stage: Stage) -> None:
    """Declared lost while it ran: the newer attempt owns the stage and the plan now."""
    logger.warning("stage %s: this attempt was declared lost; it stops without writing more", stage.pk)
    append_log(
        stage.plan,
        "warning",
        f"An older attempt of {stage.get_kind_display()} (attempt {stage.attempt}) stopped: a newer one took over.",
    )
    return None


def fail_plan(plan: DeploymentPlan, sentence: str, *, suspend: bool) -> None:
    """After a stage ended badly: an abort asked for meanwhile completes; a failure that a person
    can act on suspends the plan (Continue, Prepare Again, Abort); anything else finishes it with
    errors."""
    plan.refresh_from_db(fields=["state"])
    if machine.is_rolling_back(plan.state):
        # Every front-end is back on the plan's releases (the switch is all or nothing).
        try:
            fail_rollback(plan, sentence, actor=RUNNER)
        except moves.TransitionLost as exc:
            logger.warning("plan %s: %s", plan.key, exc)
    elif plan.state == P.ABORTING:
        _move(plan, expected={P.ABORTING}, to=P.ABORTED, reason=sentence, fields={"aborted_at": timezone.now()})
    elif suspend and plan.state in machine.SUSPENDABLE:
        _move(plan, expected=machine.SUSPENDABLE, to=P.SUSPENDED, reason=sentence)
    else:
        _move(plan, expected=machine.FAILABLE, to=P.FINISHED_WITH_ERRORS, reason=sentence)


def _move(plan: DeploymentPlan, *, expected: set[str] | frozenset[str], to: str, reason: str, fields=None) -> None:
    try:
        moves.move_plan(plan, expected=expected, to=to, actor=RUNNER, reason=reason, fields=fields)
    except (moves.TransitionLost, moves.StaleAttempt) as exc:
        logger.warning("plan %s: %s", plan.key, exc)
