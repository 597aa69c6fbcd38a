"""A plan's audit row: who did what to which plan, on which environment (the plan services and the
approvals write them through this one helper)."""

from __future__ import annotations

from core import audit
from core.actors import Actor
from deployments.models import DeploymentPlan


def record(actor: Actor, action: str, plan: DeploymentPlan, *, changes: dict | None = None, message: str = "") -> None:
    audit.record(
        actor=actor,
        action=action,
        object_type="plan",
        object_key=plan.key,
        object_label=str(plan),
        environment_key=plan.target.key,
        changes=changes,
        message=message,
    )
