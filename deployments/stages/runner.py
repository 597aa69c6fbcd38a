"""Runs one stage: claim it, keep a heartbeat, run Prepare or Continue, map every ending to a status.

A stage never stays ``running``: a known failure (StepFailed) becomes a failed stage with the
sentence people read; anything else an errored stage with the traceback kept for developers; a
worker that dies is caught by the reaper through the stale heartbeat. Every status of the stage and
every state of the plan is written through the state module.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from core.actors import Actor
from deployments.models import DeploymentPlan, Stage, StageKind
from deployments.stages.continuation import run_continue
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

HEARTBEAT_SECONDS = getattr(settings, "STAGE_HEARTBEAT_SECONDS", 5)


class Heartbeat:
    """Writes ``heartbeat_at`` every few seconds from a thread with its own database connection."""

    def __init__(self, stage_id: int) -> None:
        self.stage_id = stage_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{stage_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_SECONDS * 2)

    def _run(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                Stage.objects.filter(pk=self.stage_id, status=StageState.RUNNING).update(heartbeat_at=timezone.now())
        except Exception:  # a heartbeat must never take the stage down
            logger.exception("heartbeat of stage %s failed", self.stage_id)
        finally:
            connection.close()


def run(stage_id: int, *, task_id: str = "", worker: str = "") -> str | None:
    close_old_connections()
    stage = moves.claim_stage(stage_id, task_id=task_id, worker=worker)
    if stage is None:
        logger.info("stage %s already claimed: nothing to do", stage_id)
        return None
    plan = stage.plan
    with Heartbeat(stage.pk):
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
        except StageAborted:
            moves.finish_stage(stage, StageState.CANCELLED, explanation="Aborted.")
            append_log(plan, "warning", f"{stage.get_kind_display()} stopped: the plan was aborted.")
            _move(plan, expected={P.ABORTING}, to=P.ABORTED, reason="Aborted", fields={"aborted_at": timezone.now()})
            return StageState.CANCELLED
        except StepFailed as exc:
            moves.finish_stage(stage, StageState.FAILED, explanation=exc.message)
            append_log(plan, "error", exc.message)
            fail_plan(plan, exc.message, suspend=exc.suspend)
            return StageState.FAILED
        except Exception as exc:  # anything else is a bug: keep the traceback for developers
            logger.exception("stage %s errored", stage.pk)
            sentence = (
                f"{stage.get_kind_display()} stopped on an unexpected error ({exc.__class__.__name__}); "
                "the developers' traceback is kept on the stage."
            )
            moves.finish_stage(stage, StageState.ERRORED, explanation=sentence, traceback=traceback.format_exc())
            append_log(plan, "error", sentence)
            fail_plan(plan, sentence, suspend=False)
            return StageState.ERRORED


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
    except moves.TransitionLost as exc:
        logger.warning("plan %s: %s", plan.key, exc)
