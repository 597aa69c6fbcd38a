"""Runs one stage: claim it, keep a heartbeat, run Prepare or Continue, map every ending to a status.

A stage never stays ``running``: a known failure (StepFailed) becomes a failed stage with the
sentence people read; anything else an errored stage with the traceback kept for developers; a
worker that dies is caught by the reaper through the stale heartbeat.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from deployments import transitions
from deployments.models import DeploymentPlan, PlanStatus, Stage, StageKind, StageStatus
from deployments.stages.log import append_log
from deployments.steps import StepFailed
from environments import access
from environments.models import AccessLevel

logger = logging.getLogger(__name__)
S = PlanStatus

HEARTBEAT_SECONDS = getattr(settings, "STAGE_HEARTBEAT_SECONDS", 5)


class StageAborted(Exception):
    """The plan was set to aborting: stop at the next safe point."""


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
                Stage.objects.filter(pk=self.stage_id, status=StageStatus.RUNNING).update(heartbeat_at=timezone.now())
        except Exception:  # a heartbeat must never take the stage down
            logger.exception("heartbeat of stage %s failed", self.stage_id)
        finally:
            connection.close()


def claim(stage_id: int, *, task_id: str = "", worker: str = "") -> Stage | None:
    """Mark the stage running; None when it was already claimed (a redelivered message)."""
    now = timezone.now()
    claimed = Stage.objects.filter(pk=stage_id, status=StageStatus.QUEUED).update(
        status=StageStatus.RUNNING, started_at=now, heartbeat_at=now, task_id=task_id[:64], worker=worker[:200]
    )
    if not claimed:
        return None
    return Stage.objects.select_related("plan", "plan__target", "plan__source", "requested_by").get(pk=stage_id)


def check_not_aborted(plan: DeploymentPlan) -> None:
    status = DeploymentPlan.objects.filter(pk=plan.pk).values_list("status", flat=True).first()
    if status == S.ABORTING:
        raise StageAborted()


def _finish_stage(stage: Stage, status: str, *, explanation: str = "", tb: str = "") -> None:
    Stage.objects.filter(pk=stage.pk, status=StageStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), explanation=explanation, traceback=tb
    )


def run(stage_id: int, *, task_id: str = "", worker: str = "") -> str | None:
    close_old_connections()
    stage = claim(stage_id, task_id=task_id, worker=worker)
    if stage is None:
        logger.info("stage %s already claimed: nothing to do", stage_id)
        return None
    plan = stage.plan
    with Heartbeat(stage.pk):
        try:
            if stage.plan.status == S.ABORTING:
                raise StageAborted()
            if stage.requested_by is not None and not access.can(stage.requested_by, plan.target, AccessLevel.DEPLOY):
                raise StepFailed(f"{stage.requested_by.username} no longer has the deploy right on {plan.target.name}.")
            if stage.kind == StageKind.PREPARE:
                from deployments.stages.prepare import run_prepare

                run_prepare(stage)
            else:
                from deployments.stages.continuation import run_continue

                run_continue(stage)
            _finish_stage(stage, StageStatus.SUCCEEDED)
            return StageStatus.SUCCEEDED
        except StageAborted:
            _finish_stage(stage, StageStatus.CANCELLED, explanation="Aborted.")
            append_log(plan, "warning", f"{stage.get_kind_display()} stopped: the plan was aborted.")
            _move(plan, expected={S.ABORTING}, to=S.ABORTED, reason="Aborted", fields={"aborted_at": timezone.now()})
            return StageStatus.CANCELLED
        except StepFailed as exc:
            _finish_stage(stage, StageStatus.FAILED, explanation=exc.message)
            append_log(plan, "error", exc.message)
            _after_failure(stage, exc.message, suspended=getattr(exc, "suspend", False))
            return StageStatus.FAILED
        except Exception as exc:  # anything else is a bug: keep the traceback for developers
            logger.exception("stage %s errored", stage.pk)
            sentence = (
                f"{stage.get_kind_display()} stopped on an unexpected error ({exc.__class__.__name__}); "
                "the developers' traceback is kept on the stage."
            )
            _finish_stage(stage, StageStatus.ERRORED, explanation=sentence, tb=traceback.format_exc())
            append_log(plan, "error", sentence)
            _after_failure(stage, sentence, suspended=False)
            return StageStatus.ERRORED


def _after_failure(stage: Stage, sentence: str, *, suspended: bool) -> None:
    plan = stage.plan
    if DeploymentPlan.objects.filter(pk=plan.pk, status=S.ABORTING).exists():
        _move(plan, expected={S.ABORTING}, to=S.ABORTED, reason=sentence, fields={"aborted_at": timezone.now()})
        return
    if suspended:
        _move(
            plan, expected={S.RUNNING}, to=S.NEEDS_USER_INTERVENTION, info=transitions.INFO_SUSPENDED, reason=sentence
        )
    else:
        _move(plan, expected={S.RUNNING}, to=S.FINISHED_WITH_ERRORS, reason=sentence)


def _move(plan: DeploymentPlan, *, expected: set[str], to: str, reason: str, info: str = "", fields=None) -> None:
    try:
        transitions.transition(plan, expected=expected, to=to, actor="system", reason=reason, info=info, fields=fields)
    except transitions.TransitionLost as exc:
        logger.warning("plan %s: %s", plan.key, exc)
