"""Stages whose worker died: their heartbeat goes stale, and beat resumes or fails them."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments import plans, transitions
from deployments.models import DeploymentPlan, PlanStatus, Stage, StageKind, StageStatus
from deployments.stages.log import append_log

logger = logging.getLogger(__name__)
S = PlanStatus

STALE_AFTER = dt.timedelta(seconds=getattr(settings, "STAGE_STALE_SECONDS", 30))
QUEUED_TOO_LONG = dt.timedelta(seconds=getattr(settings, "STAGE_REQUEUE_SECONDS", 120))
MAX_ATTEMPTS = 3


def reap_stale_stages(*, now: dt.datetime | None = None) -> list[int]:
    """Errored the stages whose worker stopped answering; start the next attempt, or fail the plan."""
    now = now or timezone.now()
    reaped: list[int] = []
    stale = Stage.objects.select_related("plan", "plan__target", "requested_by").filter(
        status=StageStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER
    )
    for stage in stale:
        with transaction.atomic():
            lost = Stage.objects.filter(pk=stage.pk, status=StageStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER)
            sentence = (
                f"The worker running {stage.get_kind_display()} ({stage.worker or 'unknown'}) stopped answering; "
                f"last heartbeat at {stage.heartbeat_at:%H:%M:%S}."
            )
            if not lost.update(status=StageStatus.ERRORED, finished_at=now, explanation=sentence):
                continue
            reaped.append(stage.pk)
            plan = DeploymentPlan.objects.get(pk=stage.plan_id)
            append_log(plan, "warning", sentence)
            if plan.status == S.ABORTING:
                transitions.transition(
                    plan,
                    expected=S.ABORTING,
                    to=S.ABORTED,
                    actor="system",
                    reason=sentence,
                    fields={"aborted_at": now},
                )
            elif plan.status == S.RUNNING and stage.attempt < MAX_ATTEMPTS:
                append_log(plan, "info", f"Resuming {stage.get_kind_display()} (attempt {stage.attempt + 1}).")
                plans.new_stage(plan, stage.kind, actor=stage.requested_by, attempt=stage.attempt + 1)
            elif plan.status == S.RUNNING:
                reason = f"{stage.get_kind_display()} failed {MAX_ATTEMPTS} times: giving up."
                append_log(plan, "error", reason)
                transitions.transition(
                    plan, expected=S.RUNNING, to=S.FINISHED_WITH_ERRORS, actor="system", reason=reason
                )
    # A queued stage whose message was lost: send it again (a duplicate finds it claimed and stops).
    for stage in Stage.objects.filter(status=StageStatus.QUEUED, queued_at__lt=now - QUEUED_TOO_LONG):
        from deployments.tasks import run_stage

        run_stage.apply_async(args=[stage.pk], queue="stages")
    return reaped


__all__ = ["reap_stale_stages", "StageKind"]
