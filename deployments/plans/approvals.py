"""Approvals before Continue: a person between Prepare and Continue.

An environment may ask for a number of approvals (``Environment.approvals_required``) from people
with a chosen right on it (``approver_level``), other than whoever prepared or scheduled the plan.
An approval is for the plan as prepared: Prepare Again gives the plan a new ``prepared_at`` and
the decisions taken on the earlier attempt stop counting. An approval may be withdrawn; a
rejection blocks Continue until somebody prepares the plan again. Continue (by hand, by the API
or scheduled) asks ``refusal_sentence`` first.

Listeners (notifications) hear about decisions after commit; they are registered at app start.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.actors import Actor
from core.refusals import Conflict, Refusal
from deployments.models import Approval, Decision, DeploymentPlan, NotificationEvent
from deployments.plans import audit as plan_audit
from deployments.stages.log import append_log
from deployments.state import moves
from deployments.state.machine import PlanState
from deployments.state.moves import TransitionLost
from environments import access
from environments.models import AccessLevel

logger = logging.getLogger(__name__)
P = PlanState


class ApprovalRefused(Refusal):
    """The decision cannot be recorded now; the message says why."""


class AlreadyDecided(Conflict):
    """The same person already gave this decision (a double click)."""


class ApprovalsMissing(Refusal):
    """Continue waits for approvals, or a rejection blocks it."""


@dataclasses.dataclass(frozen=True)
class ApprovalStatus:
    """What a prepared plan's approvals amount to, for pages, the API and Continue."""

    needed: int
    level_label: str
    target_name: str
    counted: list[Approval]
    not_counted: list[Approval]
    rejection: Approval | None
    excluded_names: list[str]

    @property
    def required(self) -> bool:
        return self.needed > 0

    @property
    def missing(self) -> int:
        return max(0, self.needed - len(self.counted))

    @property
    def complete(self) -> bool:
        return not self.required or (self.rejection is None and self.missing == 0)

    @property
    def approvers(self) -> list[str]:
        return [a.user_name for a in self.counted]

    def sentence(self) -> str:
        """Where the approvals stand, in one sentence (the page, the board's tooltip, the API)."""
        if not self.required:
            return "No approval needed."
        if self.rejection is not None:
            return _rejected(self.rejection)
        given = f"{len(self.counted)} of {self.needed} approvals"
        if self.counted:
            given += " (" + ", ".join(self.approvers) + ")"
        if self.missing == 0:
            return given + ": complete."
        return f"{given}: waiting for {self.missing} more, {self.who()}."

    def who(self) -> str:
        who = f"from people with the {self.level_label} right on {self.target_name}"
        if self.excluded_names:
            who += " other than " + " and ".join(self.excluded_names) + " (who prepared or scheduled it)"
        return who

    def refusal(self) -> str | None:
        """Continue's refusal, or None when it may go on."""
        if self.complete:
            return None
        if self.rejection is not None:
            return _rejected(self.rejection) + " Prepare again to ask for approvals anew."
        return (
            f"Continue needs {self.needed} approval{'s' if self.needed != 1 else ''} {self.who()}: "
            f"{len(self.counted)} given, {self.missing} missing."
        )

    def as_api(self) -> dict[str, Any]:
        return {
            "Needed": self.needed,
            "Missing": self.missing if self.rejection is None else self.needed,
            "Complete": self.complete,
            "Rejected": self.rejection is not None,
            "Summary": self.sentence(),
            "Decisions": [
                {
                    "User": a.user_name,
                    "Decision": "Approved" if a.is_approval else "Rejected",
                    "Comment": a.comment,
                    "At": a.at.isoformat(),
                    "Counted": a in self.counted or a is self.rejection,
                }
                for a in [*self.counted, *self.not_counted, *([self.rejection] if self.rejection else [])]
            ],
        }


def _rejected(rejection: Approval) -> str:
    return f"Rejected by {rejection.user_name}" + (f": {rejection.comment}" if rejection.comment else ".")


# --- listeners ------------------------------------------------------------------------------------

DecisionListener = Callable[[int, str, str], None]
_listeners: list[DecisionListener] = []


def on_decision(listener: DecisionListener) -> DecisionListener:
    """Register ``listener(plan_id, event, reason)`` (at app start): called after a decision
    commits with a notification event (approved when complete, rejected). Never raises into the
    decision."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def _tell(plan_id: int, event: str, reason: str) -> None:
    def tell() -> None:
        for listener in list(_listeners):
            try:
                listener(plan_id, event, reason)
            except Exception:
                logger.exception("listener of approvals failed for plan %s", plan_id)

    transaction.on_commit(tell)


# --- reading --------------------------------------------------------------------------------------


def excluded_users(plan: DeploymentPlan) -> dict[int, str]:
    """Who may not approve the plan as it stands: whoever prepared it last, whoever scheduled it."""
    excluded: dict[int, str] = {}
    preparer = (
        plan.transitions.filter(to_state=P.PREPARING, actor__isnull=False)
        .order_by("-at", "-id")
        .values_list("actor_id", "actor_name")
        .first()
    )
    if preparer:
        excluded[preparer[0]] = preparer[1]
    if plan.continue_scheduled_by_id and plan.continue_scheduled_by_id not in excluded:
        excluded[plan.continue_scheduled_by_id] = plan.continue_scheduled_by.get_username()
    return excluded


def status_of(plan: DeploymentPlan) -> ApprovalStatus:
    target = plan.target
    needed = target.approvals_required
    excluded = excluded_users(plan) if needed else {}
    standing = (
        list(plan.approvals.filter(prepared_at=plan.prepared_at, withdrawn_at__isnull=True))
        if needed and plan.prepared_at
        else []
    )
    rejection = next((a for a in standing if not a.is_approval), None)
    approvals = [a for a in standing if a.is_approval]
    return ApprovalStatus(
        needed=needed,
        level_label=AccessLevel(target.approver_level).label.lower(),
        target_name=target.name,
        counted=[a for a in approvals if a.user_id not in excluded],
        not_counted=[a for a in approvals if a.user_id in excluded],
        rejection=rejection,
        excluded_names=list(excluded.values()),
    )


def refusal_sentence(plan: DeploymentPlan) -> str | None:
    """Continue's refusal for want of approvals, or None."""
    if not plan.target.approvals_required:
        return None
    return status_of(plan).refusal()


def may_decide(user: Any, plan: DeploymentPlan) -> bool:
    """Whether the page offers Approve / Reject to ``user``."""
    target = plan.target
    return (
        bool(target.approvals_required)
        and plan.is_prepared
        and access.can(user, target, target.approver_level)
        and user.pk not in excluded_users(plan)
    )


# --- deciding -------------------------------------------------------------------------------------


def approve(*, actor: Actor, plan: DeploymentPlan, comment: str = "") -> Approval:
    return _decide(actor=actor, plan=plan, decision=Decision.APPROVE, comment=comment)


def reject(*, actor: Actor, plan: DeploymentPlan, comment: str = "") -> Approval:
    return _decide(actor=actor, plan=plan, decision=Decision.REJECT, comment=comment)


def _decide(*, actor: Actor, plan: DeploymentPlan, decision: str, comment: str) -> Approval:
    target = plan.target
    if actor.user is None:
        raise ApprovalRefused("Only a person or a service account can approve or reject a plan.")
    access.require(actor.user, target, target.approver_level)
    comment = (comment or "").strip()[:2000]
    verb = "approve" if decision == Decision.APPROVE else "reject"
    with transaction.atomic():
        # The plan's row is the lock: Prepare Again and Continue move it, so a decision is taken
        # on the attempt the person saw, or refused.
        locked = DeploymentPlan.objects.select_for_update().select_related("target").get(pk=plan.pk)
        if not target.approvals_required:
            raise ApprovalRefused(f"{target.name} needs no approval before Continue.")
        if not locked.is_prepared or locked.prepared_at is None:
            raise ApprovalRefused(f"The plan is {locked.state_label.lower()}: only a prepared plan can be {verb}d.")
        excluded = excluded_users(locked)
        if decision == Decision.APPROVE and actor.user.pk in excluded:
            raise ApprovalRefused(
                "You prepared or scheduled this plan: somebody else must approve it "
                f"(with the {AccessLevel(target.approver_level).label.lower()} right on {target.name})."
            )
        standing = locked.approvals.filter(
            prepared_at=locked.prepared_at, withdrawn_at__isnull=True, user=actor.user
        ).first()
        if standing is not None and standing.decision == decision:
            raise AlreadyDecided(f"You already {verb}d this plan.")
        if standing is not None and standing.decision == Decision.REJECT:
            raise ApprovalRefused("You rejected this plan: the rejection stands until the plan is prepared again.")
        now = timezone.now()
        if standing is not None:
            # An approval turned into a rejection: withdrawn, then the rejection recorded.
            Approval.objects.filter(pk=standing.pk).update(withdrawn_at=now)
        try:
            with transaction.atomic():
                approval = Approval.objects.create(
                    plan=locked,
                    user=actor.user,
                    user_name=actor.name[:150],
                    decision=decision,
                    comment=comment,
                    prepared_at=locked.prepared_at,
                )
        except IntegrityError:
            raise AlreadyDecided(f"You already {verb}d this plan.") from None
        said = f": {comment}" if comment else "."
        if decision == Decision.APPROVE:
            append_log(locked, "info", f"Approved by {actor.name}{said}")
            audit_action = "plan.approved"
        else:
            append_log(locked, "warning", f"Rejected by {actor.name}{said} Continue is blocked until Prepare Again.")
            audit_action = "plan.rejected"
            if locked.is_scheduled:
                try:
                    moves.move_plan(
                        locked,
                        expected={P.SCHEDULED},
                        to=P.PREPARED,
                        actor=actor,
                        reason=f"Scheduled Continue cancelled: rejected by {actor.name}",
                        fields={"continue_scheduled_at": None, "continue_scheduled_by": None},
                    )
                except TransitionLost:
                    pass
        plan_audit.record(actor, audit_action, locked, message=comment)
        status = status_of(locked)
        if decision == Decision.REJECT:
            _tell(locked.pk, NotificationEvent.REJECTED, status.sentence())
        elif status.complete:
            _tell(locked.pk, NotificationEvent.APPROVED, status.sentence())
    plan.refresh_from_db()
    return approval


def withdraw(*, actor: Actor, plan: DeploymentPlan) -> Approval:
    """Withdraw one's own approval of the plan as prepared."""
    if actor.user is None:
        raise ApprovalRefused("Only a person or a service account can withdraw an approval.")
    access.require(actor.user, plan.target, AccessLevel.VIEW)
    with transaction.atomic():
        locked = DeploymentPlan.objects.select_for_update().select_related("target").get(pk=plan.pk)
        standing = locked.approvals.filter(
            prepared_at=locked.prepared_at, withdrawn_at__isnull=True, user=actor.user
        ).first()
        if standing is None or not locked.is_prepared:
            raise ApprovalRefused("You have no approval of this plan to withdraw.")
        if not standing.is_approval:
            raise ApprovalRefused("A rejection stands until the plan is prepared again.")
        standing.withdrawn_at = timezone.now()
        standing.save(update_fields=["withdrawn_at"])
        append_log(locked, "warning", f"Approval withdrawn by {actor.name}.")
        plan_audit.record(actor, "plan.approval_withdrawn", locked)
    return standing
