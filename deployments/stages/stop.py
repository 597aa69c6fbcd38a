"""Stopping a stage at a safe point when its plan is being aborted."""

from __future__ import annotations

from deployments.models import DeploymentPlan
from deployments.state.machine import PlanState


class StageAborted(Exception):
    """The plan was set to aborting: stop at the next safe point."""


def check_not_aborted(plan: DeploymentPlan) -> None:
    state = DeploymentPlan.objects.filter(pk=plan.pk).values_list("state", flat=True).first()
    if state == PlanState.ABORTING:
        raise StageAborted()
