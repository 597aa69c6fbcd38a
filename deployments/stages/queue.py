"""Queueing a stage: its row, and its task sent to the stage workers once the row is committed.

The task is sent by name, so that whoever queues a stage (a plan service, Prepare handing over to
Continue, the reaper) does not import the task module, which imports them.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction

from deployments.models import DeploymentPlan, Stage

RUN_STAGE = "deployments.tasks.run_stage"
STAGES_QUEUE = "stages"


def send(stage_id: int) -> None:
    current_app.send_task(RUN_STAGE, args=[stage_id], queue=STAGES_QUEUE)


def new_stage(plan: DeploymentPlan, kind: str, *, requested_by: Any, attempt: int = 1) -> Stage:
    """A queued stage of ``plan``; its task leaves when the caller's transaction commits.

    ``requested_by``: the user whose deploy right the stage checks when it starts (None: the system).
    """
    stage = Stage.objects.create(plan=plan, kind=kind, attempt=attempt, requested_by=requested_by)
    transaction.on_commit(lambda: send(stage.pk))
    return stage
