"""Stages whose worker died: beat resumes or fails them.

A stage is judged dead only when two facts agree: its heartbeat is stale, and its plan's lease (a
PostgreSQL advisory lock its attempt holds on its own connection, see deployments.stages.lease) is
free, which the database makes so only when the attempt's process or connection is gone. A late
beat from a live attempt (a slow machine, a database blip the heartbeat is reconnecting from) is
never enough.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.actors import Actor
from deployments.models import DeploymentPlan
from deployments.stages import queue
from deployments.stages.lease import lease_is_free
from deployments.stages.log import append_log
from deployments.stages.runner import fail_plan
from deployments.state import moves
from deployments.state.machine import PlanState

logger = logging.getLogger(__name__)
P = PlanState
REAPER = Actor.system("reaper")

STALE_AFTER = dt.timedelta(seconds=getattr(settings, "STAGE_STALE_SECONDS", 30))
QUEUED_TOO_LONG = dt.timedelta(seconds=getattr(settings, "STAGE_REQUEUE_SECONDS", 120))
MAX_ATTEMPTS = 3


def reap_stale_stages(*, now: dt.datetime | None = None) -> list[int]:
    """Errored the stages whose worker stopped answering; start the next attempt, or fail the plan."""
    now = now or timezone.now()
    stale_before = now - STALE_AFTER
    reaped: list[int] = []
    for stage in moves.stale_stages(stale_before=stale_before):
        with transaction.atomic():
            # Held until this transaction ends: no attempt of the plan takes the lease meanwhile.
            with connection.cursor() as cursor:
                if not lease_is_free(cursor, stage.plan_id):
                    logger.warning(
                        "stage %s: heartbeat late (last at %s) but its attempt still holds the lease: alive",
                        stage.pk,
                        stage.heartbeat_at,
                    )
                    continue
            sentence = (
                f"The worker running {stage.get_kind_display()} ({stage.worker or 'unknown'}) stopped answering; "
                f"last heartbeat at {stage.heartbeat_at:%H:%M:%S}."
            )
            if not moves.lose_stage(stage, stale_before=stale_before, explanation=sentence):
                continue
            reaped.append(stage.pk)
            plan = DeploymentPlan.objects.get(pk=stage.plan_id)
            append_log(plan, "warning", sentence)
            if plan.state == P.ABORTING:
                moves.move_plan(
                    plan, expected={P.ABORTING}, to=P.ABORTED, actor=REAPER, reason=sentence, fields={"aborted_at": now}
                )
            elif plan.is_running and stage.attempt < MAX_ATTEMPTS:
                append_log(plan, "info", f"Resuming {stage.get_kind_display()} (attempt {stage.attempt + 1}).")
                queue.new_stage(plan, stage.kind, requested_by=stage.requested_by, attempt=stage.attempt + 1)
            elif plan.is_running:
                reason = f"{stage.get_kind_display()} failed {MAX_ATTEMPTS} times: giving up."
                append_log(plan, "error", reason)
                fail_plan(plan, reason, suspend=False)
    # A queued stage whose message was lost: send it again (a duplicate finds it claimed and stops).
    for stage in moves.queued_before(now - QUEUED_TOO_LONG):
        queue.send(stage.pk)
    return reaped
