"""The one owner of a deployment plan's status.

``ALLOWED`` is the map of legal moves; ``transition()`` performs one with a compare-and-set update
(``filter(pk=…, status__in=expected).update(…)``: one row, or somebody else moved the plan first)
and writes the Transition row in the same transaction. Nothing else writes ``status``.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from deployments import notifications
from deployments.models import DeploymentPlan, PlanStatus, Transition

S = PlanStatus

FINISHED = frozenset({S.FINISHED_SUCCESSFUL, S.FINISHED_WITH_WARNINGS, S.FINISHED_WITH_ERRORS})
FINAL = FINISHED | {S.ABORTED}
# A plan in one of these holds its target environment: no other plan may start there.
HOLDING = frozenset({S.RUNNING, S.NEEDS_USER_INTERVENTION, S.ABORTING})

INFO_PREPARED = "deployment_prepared"
INFO_SUSPENDED = "deployment_suspended"

ALLOWED: dict[str, frozenset[str]] = {
    S.SAVED: frozenset({S.RUNNING}),
    # Prepare or Continue running; aborting only before the point of no return (checked by the caller).
    S.RUNNING: frozenset({S.NEEDS_USER_INTERVENTION, S.ABORTING, S.ABORTED} | FINISHED),
    # Prepared or suspended: Continue (or Prepare again), abort, or expire.
    S.NEEDS_USER_INTERVENTION: frozenset({S.RUNNING, S.ABORTING, S.ABORTED, S.FINISHED_WITH_ERRORS}),
    S.ABORTING: frozenset({S.ABORTED}),
    # Retry an aborted plan.
    S.ABORTED: frozenset({S.SAVED}),
}
for _final in FINISHED:
    ALLOWED[_final] = frozenset()


class TransitionLost(Exception):
    """The plan was not in the expected status: another click, user, pipeline or worker moved it first."""

    def __init__(self, plan: DeploymentPlan | int, expected: set[str], wanted: str) -> None:
        plan_obj = plan if isinstance(plan, DeploymentPlan) else DeploymentPlan.objects.filter(pk=plan).first()
        self.current = plan_obj.status if plan_obj else None
        self.current_info = plan_obj.info if plan_obj else ""
        super().__init__(
            f"The plan is {self.current or 'gone'}, not {' or '.join(sorted(expected))}: cannot move it to {wanted}."
        )


class TargetHeld(Exception):
    """Another plan holds the target environment."""

    def __init__(self, holder: DeploymentPlan | None) -> None:
        self.holder = holder
        label = _holder_label(holder)
        super().__init__(f"{label} holds the target environment; it must be continued, aborted or expire first.")


def _holder_label(holder: DeploymentPlan | None) -> str:
    if holder is None:
        return "Another plan"
    state = "prepared" if holder.status == S.NEEDS_USER_INTERVENTION and holder.info == INFO_PREPARED else holder.status
    return f"Plan {holder.key} ({state}, by {holder.started_by.username if holder.started_by else 'unknown'})"


def holder_of(environment_id: int, *, excluding: int | None = None) -> DeploymentPlan | None:
    qs = DeploymentPlan.objects.select_related("started_by").filter(target_id=environment_id, status__in=HOLDING)
    if excluding is not None:
        qs = qs.exclude(pk=excluding)
    return qs.first()


def transition(
    plan: DeploymentPlan,
    *,
    expected: set[str] | str,
    to: str,
    actor: Any = None,
    reason: str = "",
    info: str = "",
    extra_filter: Q | None = None,
    fields: dict[str, Any] | None = None,
) -> DeploymentPlan:
    """Move ``plan`` from one of ``expected`` to ``to``; raise TransitionLost when it was not there.

    ``extra_filter`` narrows the compare-and-set (e.g. "no point of no return yet"); ``fields`` are
    written in the same UPDATE. The in-memory ``plan`` is refreshed.
    """
    expected_set = {expected} if isinstance(expected, str) else set(expected)
    for source in expected_set:
        if to not in ALLOWED.get(source, frozenset()):
            raise ValueError(f"{source} -> {to} is not an allowed plan transition")
    now = timezone.now()
    values = {"status": to, "info": info, **(fields or {})}
    if to in FINAL:
        values.setdefault("finished_at", now)
    user = actor if getattr(actor, "is_authenticated", False) else None
    actor_name = getattr(actor, "username", None) or (actor if isinstance(actor, str) else "system")
    with transaction.atomic():
        qs = DeploymentPlan.objects.filter(pk=plan.pk, status__in=expected_set)
        if extra_filter is not None:
            qs = qs.filter(extra_filter)
        current = DeploymentPlan.objects.filter(pk=plan.pk).values_list("status", flat=True).first()
        try:
            with transaction.atomic():
                moved = qs.update(**values)
        except IntegrityError:
            # The partial unique index on (target) for holding statuses: somebody else got there first.
            raise TargetHeld(holder_of(plan.target_id, excluding=plan.pk)) from None
        if moved != 1:
            raise TransitionLost(plan.pk, expected_set, to)
        Transition.objects.create(
            plan_id=plan.pk,
            from_status=current or "",
            to_status=to,
            info=info,
            actor=user,
            actor_name=str(actor_name),
            reason=reason,
        )
        # Tell whoever listens once the move is committed; robust: a notification problem never
        # reaches the caller (plan_moved also swallows its own errors).
        plan_id = plan.pk
        transaction.on_commit(lambda: notifications.plan_moved(plan_id, to, info), robust=True)
        if to in FINAL:
            # Indexes built at Prepare for a plan that will not continue are dropped by a worker.
            from deployments.stages import prepared_indexes

            transaction.on_commit(lambda: prepared_indexes.plan_moved(plan_id, to), robust=True)
    plan.refresh_from_db()
    return plan
