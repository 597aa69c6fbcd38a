"""Deployment plans: create, save, delete, start, continue, schedule, abort, retry, reuse, expire.

Rights are checked here as well as in the views and the API, so every door is the same door; the
system (beat, the demo loader) is trusted. Every state change goes through the state module's
``move_plan()``; a stage's task is sent only after the transaction that created the stage commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.actors import Actor
from core.refusals import Conflict, Refusal
from deployments.models import (
    Application,
    ApplicationVersion,
    DeploymentPlan,
    GeneratedSql,
    OperationKind,
    PlanOperation,
    RunningVersion,
    StageKind,
)
from deployments.plans import approvals
from deployments.plans import audit as plan_audit
from deployments.stages import drift, queue, rollback
from deployments.stages.estimate import continue_estimate
from deployments.stages.log import append_log
from deployments.stages.validity import check_still_valid
from deployments.state import machine, moves
from deployments.state.machine import PlanState
from deployments.state.moves import TargetHeld, TransitionLost
from deployments.steps.validate import Validation, validate_plan
from environments import access, windows
from environments.models import AccessLevel, DeploymentZone, Environment

P = PlanState


class PlanRefused(Refusal):
    """The action cannot be done now; the message says why (shown as is, 400 in the API)."""


class PlanInvalid(PlanRefused):
    def __init__(self, validation: Validation) -> None:
        self.validation = validation
        super().__init__("The plan has errors: " + "; ".join(validation.errors))


ApprovalsMissing = approvals.ApprovalsMissing


class AlreadyRunning(Conflict):
    """Somebody pressed the same button first (409 where the API tells it from a refusal)."""


class OutsideWindow(PlanRefused):
    """The target refuses Continue outside its deployment window unless a reason is given."""


class Frozen(PlanRefused):
    """The target is in a freeze: only a user with the manage right may go on, with a reason (audited)."""


class NotInSource(PlanRefused):
    """The target deploys only versions that run in the source: only a user with the manage right
    on the target may deploy others, with a reason (audited)."""


class EstimateDoesNotFit(PlanRefused):
    """The pessimistic Continue estimate exceeds the time left in the window: only a user with the
    manage right may continue, with a reason (audited)."""


__all__ = [
    "AlreadyRunning",
    "ApprovalsMissing",
    "Frozen",
    "NotInSource",
    "OutsideWindow",
    "PlanInvalid",
    "PlanRefused",
    "TargetHeld",
    "TransitionLost",
    "Validation",
    "validate_plan",
]


@dataclasses.dataclass
class Operation:
    application: Application
    version: ApplicationVersion | None  # None: undeploy
    # A deployment zone of the target: the application goes to its front-ends only (None: all).
    zone: DeploymentZone | None = None


# --- building plans ---------------------------------------------------------------------------


def _require(actor: Actor, environment: Environment, level: int) -> None:
    if actor.is_system:
        return
    access.require(actor.user, environment, level)


def create_plan(
    *,
    actor: Actor,
    source: Environment,
    target: Environment,
    operations: list[Operation],
    notes: str = "",
    from_package: bool = False,
) -> DeploymentPlan:
    """``from_package``: the plan deploys a binary package posted to the target (the air-gapped
    deployment); it has no other environment to come from, so its source is the target itself."""
    if source.pk == target.pk and not from_package:
        raise PlanRefused("The source and the target must be different environments.")
    _require(actor, target, AccessLevel.DEPLOY)
    _require(actor, source, AccessLevel.VIEW)
    with transaction.atomic():
        plan = DeploymentPlan.objects.create(
            source=source, target=target, notes=notes, created_by=actor.user, saved_at=timezone.now()
        )
        _write_operations(plan, operations)
        plan_audit.record(actor, "plan.created", plan, changes={"operations": [_op_label(op) for op in operations]})
    return plan


def _op_label(op: Operation) -> str:
    if op.version is None:
        return f"undeploy {op.application.name}"
    return f"{op.application.name} {op.version.version}" + (f" in zone {op.zone.name}" if op.zone else "")


def _write_operations(plan: DeploymentPlan, operations: list[Operation]) -> None:
    seen: set[int] = set()
    for op in operations:
        if op.application.pk in seen:
            raise PlanRefused(f"{op.application.name} appears twice in the plan.")
        seen.add(op.application.pk)
        if op.version is not None and op.version.application_id != op.application.pk:
            raise PlanRefused(f"Version {op.version.version} is not a version of {op.application.name}.")
        if op.zone is not None and op.zone.environment_id != plan.target_id:
            raise PlanRefused(f"The deployment zone {op.zone.name} is not a zone of {plan.target.name}.")
    plan.operations.all().delete()
    PlanOperation.objects.bulk_create(
        PlanOperation(
            plan=plan,
            application=op.application,
            version=op.version,
            kind=OperationKind.DEPLOY if op.version else OperationKind.UNDEPLOY,
            zone=op.zone if op.version else None,
        )
        for op in operations
    )


def update_plan(*, actor: Actor, plan: DeploymentPlan, operations: list[Operation], notes: str) -> DeploymentPlan:
    _require(actor, plan.target, AccessLevel.DEPLOY)
    with transaction.atomic():
        locked = DeploymentPlan.objects.select_for_update().get(pk=plan.pk)
        if not locked.is_saved:
            raise PlanRefused("Only a saved plan can be changed.")
        locked.notes = notes
        locked.saved_at = timezone.now()
        locked.save(update_fields=["notes", "saved_at"])
        _write_operations(locked, operations)
        plan_audit.record(actor, "plan.saved", plan, changes={"operations": [_op_label(op) for op in operations]})
    return locked


def delete_plan(*, actor: Actor, plan: DeploymentPlan) -> None:
    _require(actor, plan.target, AccessLevel.DEPLOY)
    with transaction.atomic():
        deleted, _ = DeploymentPlan.objects.filter(pk=plan.pk, state__in=[P.SAVED]).delete()
        if not deleted:
            raise PlanRefused("Only saved plans can be deleted.")
        plan_audit.record(actor, "plan.deleted", plan)


def add_suggestion(*, actor: Actor, plan: DeploymentPlan, application: Application) -> DeploymentPlan:
    """Add the missing producer a validation suggested (the version running in the source)."""
    running = RunningVersion.objects.filter(environment=plan.source, application=application).first()
    if running is None:
        raise PlanRefused(f"{application.name} does not run in {plan.source.name}.")
    ops = [
        Operation(op.application, op.version, op.zone)
        for op in plan.operations.select_related("application", "version", "zone")
    ]
    ops = [op for op in ops if op.application.pk != application.pk] + [Operation(application, running.version)]
    return update_plan(actor=actor, plan=plan, operations=ops, notes=plan.notes)


# --- running ----------------------------------------------------------------------------------


def _run_stage(
    plan: DeploymentPlan,
    *,
    expected: frozenset[str],
    to: str,
    kind: str,
    actor: Actor,
    reason: str,
    audit_action: str,
    refused: str,
    fields: dict | None = None,
) -> DeploymentPlan:
    """Move the plan to a running state and queue its stage, in one transaction (the task is sent
    on commit). Losing the compare-and-set to a plan that runs now is a double click, a second user
    or a pipeline: "already running". Any other state means the button no longer applies."""
    with transaction.atomic():
        try:
            moves.move_plan(plan, expected=expected, to=to, actor=actor, reason=reason, fields=fields)
        except TransitionLost as exc:
            if exc.current is not None and machine.is_running(exc.current):
                raise AlreadyRunning("The deployment is already running.") from None
            raise PlanRefused(f"The plan is {machine.label(exc.current or '').lower()}: {refused}") from None
        queue.new_stage(plan, kind, requested_by=actor.user)
        plan_audit.record(actor, audit_action, plan)
    return plan


def start_plan(*, actor: Actor, plan: DeploymentPlan, override_reason: str = "") -> DeploymentPlan:
    """Prepare (two-stage target) or Deploy Now (both stages back to back).

    Deploy Now changes the target at once: it respects the target's freezes (a user with the
    manage right overrides one with ``override_reason``) and its enforced window (a reason).

    While the target cannot take the plan (held by as many plans as it allows, or by one sharing
    an application or a dependency, or with an earlier queued plan sharing one): refused with
    TargetHeld, or queued when the target queues plans; a queued plan starts on its turn
    (``start_queued_plans``).
    """
    _require(actor, plan.target, AccessLevel.DEPLOY)
    drift.refuse_if_drifted(plan.target, doing="Prepare")
    validation = validate_plan(plan)
    if not validation.ok:
        raise PlanInvalid(validation)
    target = plan.target
    now = timezone.now()
    override_reason = (override_reason or "").strip()
    not_in_source = promotion_problems(plan)
    if not_in_source:
        sentence = f"{target.name} deploys only versions that run in the source: " + "; ".join(not_in_source) + "."
        if not override_reason:
            raise NotInSource(
                f"{sentence} A user with the manage right on {target.name} may deploy them anyway, with a reason."
            )
        if not _can_manage(actor, target):
            raise NotInSource(f"{sentence} Only a user with the manage right on {target.name} may deploy them anyway.")
    freeze = outside = None
    if not target.two_stage_deployments:
        freeze = _freeze_check(actor, target, now, override_reason, what="deploy")
        # Only an enforced window stops Deploy Now (a window that is not enforced never did).
        outside = target.enforce_window and target.has_window and not target.window_open(now)
        if outside and not override_reason:
            raise OutsideWindow(
                f"Outside the deployment window: {window_sentence(target, now)}. "
                "Deploy in the window, or give a reason to deploy now."
            )
    with transaction.atomic():
        # Every start on a target is serialised by its row: what blocking_holder answers stays true.
        target = Environment.objects.select_for_update().get(pk=plan.target_id)
        plan.target = target
        held = moves.blocking_holder(plan) or _queued_ahead(plan)
        if held is not None:
            if not target.queue_plans:
                raise held
            try:
                moves.move_plan(
                    plan,
                    expected={P.SAVED},
                    to=P.QUEUED,
                    actor=actor,
                    reason=f"Queued: {held.message}",
                    fields={"queued_at": timezone.now(), "started_at": timezone.now(), "started_by": actor.user},
                )
            except TransitionLost as exc:
                raise PlanRefused(
                    f"The plan is {machine.label(exc.current or '').lower()}: it cannot be started."
                ) from None
            append_log(plan, "info", f"Queued behind the plans holding {target.name}: {held.message}")
            plan_audit.record(actor, "plan.queued", plan, message=held.message)
            return plan
        _run_stage(
            plan,
            expected=frozenset({P.SAVED}),
            to=P.PREPARING,
            kind=StageKind.PREPARE,
            actor=actor,
            reason="Prepare Deployment" if plan.target.two_stage_deployments else "Deploy Now",
            audit_action="plan.started",
            refused="it cannot be started.",
            fields={"started_at": timezone.now(), "started_by": actor.user},
        )
        _overrides_written(actor, plan, now, override_reason, freeze=freeze, outside=bool(outside), what="Deployed")
        if not_in_source:
            append_log(
                plan,
                "warning",
                f"Versions that do not run in {plan.source.name} deployed by {actor.name}: "
                + "; ".join(not_in_source)
                + f". Reason: {override_reason}",
            )
            plan_audit.record(
                actor,
                "plan.promotion_overridden",
                plan,
                changes={"not_in_source": not_in_source},
                message=override_reason,
            )
    return plan


def promotion_problems(plan: DeploymentPlan) -> list[str]:
    """The plan's versions that do not run in its source, when the target deploys only versions
    that run there (empty otherwise). The first environment of the path takes any version of the
    catalog: that is where versions enter the path."""
    target = plan.target
    if not target.only_versions_running_in_source:
        return []
    first = Environment.objects.order_by("order").values_list("pk", flat=True).first()
    if target.pk == first:
        return []
    running = {
        rv.application_id: rv.version
        for rv in RunningVersion.objects.filter(environment_id=plan.source_id).select_related("version")
    }
    problems = []
    for op in plan.operations.select_related("application", "version").order_by("application__name"):
        if op.kind != OperationKind.DEPLOY or op.version is None:
            continue
        there = running.get(op.application_id)
        if there is None or there.pk != op.version_id:
            problems.append(
                f"{op.application.name} {op.version.version} does not run in {plan.source.name}"
                + (f" ({there.version} does)" if there is not None else "")
            )
    return problems


def _freeze_check(
    actor: Actor, target: Environment, now: dt.datetime, override_reason: str, *, what: str
) -> windows.FreezePeriod | None:
    """The freeze in force, when a user with the manage right overrides it with a reason; a
    refusal saying who may, otherwise."""
    period = target.frozen_at(now)
    if period is None:
        return None
    sentence = period.sentence(target.name)
    if not override_reason:
        raise Frozen(f"{sentence}. Only a user with the manage right on {target.name} may {what} now, with a reason.")
    if not _can_manage(actor, target):
        raise Frozen(f"{sentence}. Only a user with the manage right on {target.name} may {what} now.")
    return period


def _overrides_written(
    actor: Actor,
    plan: DeploymentPlan,
    now: dt.datetime,
    override_reason: str,
    *,
    freeze: windows.FreezePeriod | None,
    outside: bool,
    what: str,
) -> None:
    """The plan's log and the audit trail say what was overridden, by whom and why."""
    target = plan.target
    if freeze is not None:
        append_log(
            plan,
            "warning",
            f"{what} during a freeze ({freeze.sentence(target.name)}) by {actor.name}: {override_reason}",
        )
        plan_audit.record(
            actor,
            "plan.freeze_overridden",
            plan,
            message=f"{freeze.sentence(target.name)}. Reason: {override_reason}",
        )
    if outside:
        append_log(
            plan,
            "warning",
            f"{what} outside the deployment window ({window_sentence(target, now)})"
            + (f": {override_reason}" if override_reason else "."),
        )
        if override_reason:
            plan_audit.record(actor, "plan.window_overridden", plan, message=override_reason)


def _queued_ahead(plan: DeploymentPlan) -> TargetHeld | None:
    """A plan never overtakes an earlier queued plan it shares an application or a dependency with."""
    mine = moves.footprint(plan)
    earlier = DeploymentPlan.objects.filter(target_id=plan.target_id, state=P.QUEUED).exclude(pk=plan.pk)
    if plan.queued_at is not None:
        earlier = earlier.filter(queued_at__lt=plan.queued_at)
    for other in earlier.select_related("started_by").order_by("queued_at", "id"):
        shared = moves.footprint(other) & mine
        if shared:
            return TargetHeld(other, shared=shared)
    return None


def queue_position(plan: DeploymentPlan) -> int | None:
    """1 for the first queued plan of its target; None when the plan is not queued."""
    if not plan.is_queued or plan.queued_at is None:
        return None
    ahead = DeploymentPlan.objects.filter(target_id=plan.target_id, state=P.QUEUED).filter(
        Q(queued_at__lt=plan.queued_at) | Q(queued_at=plan.queued_at, id__lt=plan.pk)
    )
    return ahead.count() + 1


def start_queued_plans(*, environment_id: int) -> list[DeploymentPlan]:
    """Start, first in first out, the queued plans the target can take now (after a plan freed it,
    and from beat in case that moment was missed). A plan that must still wait keeps its place, and
    no later plan sharing an application or a dependency with it goes ahead."""
    started: list[DeploymentPlan] = []
    actor = Actor.system("queue")
    with transaction.atomic():
        target = Environment.objects.select_for_update().filter(pk=environment_id).first()
        if target is None:
            return started
        waiting: set[str] = set()
        for plan in DeploymentPlan.objects.filter(target=target, state=P.QUEUED).order_by("queued_at", "id"):
            plan.target = target
            mine = moves.footprint(plan)
            if mine & waiting or moves.blocking_holder(plan) is not None:
                waiting |= mine
                continue
            try:
                # A savepoint each: a plan aborted meanwhile is skipped, the others still start.
                with transaction.atomic():
                    _run_stage(
                        plan,
                        expected=frozenset({P.QUEUED}),
                        to=P.PREPARING,
                        kind=StageKind.PREPARE,
                        actor=actor,
                        reason=("Prepare Deployment" if target.two_stage_deployments else "Deploy Now")
                        + ": its turn in the queue",
                        audit_action="plan.started",
                        refused="it is no longer queued.",
                        fields={"queued_at": None},
                    )
            except Refusal:
                continue
            started.append(plan)
    return started


def start_all_queued_plans() -> list[DeploymentPlan]:
    """Beat's safety net: every target with queued plans is looked at."""
    started: list[DeploymentPlan] = []
    for environment_id in (
        DeploymentPlan.objects.filter(state=P.QUEUED).values_list("target_id", flat=True).distinct().order_by()
    ):
        started += start_queued_plans(environment_id=environment_id)
    return started


def plan_moved(move: moves.PlanMove) -> None:
    """Listener: a plan that stops holding its target (or leaves its queue) may let queued ones start."""
    if move.source not in machine.HOLDING | {P.QUEUED} or move.to in machine.HOLDING:
        return
    target_id = DeploymentPlan.objects.filter(pk=move.plan_id).values_list("target_id", flat=True).first()
    if target_id is not None and DeploymentPlan.objects.filter(target_id=target_id, state=P.QUEUED).exists():
        start_queued_plans(environment_id=target_id)


def window_sentence(target: Environment, now: dt.datetime) -> str:
    window = target.window_at(now)
    if window is None:
        return f"{target.name} has no deployment window"
    # In the time zone the windows are set in (the first window's), as people set them.
    zone = target.weekly_windows()[0].timezone
    start = window[0].astimezone(zoneinfo.ZoneInfo(zone))
    return f"{target.name}'s window ({target.window_label()}) opens {start:%a %Y-%m-%d %H:%M %Z}"


def continue_plan(
    *, actor: Actor, plan: DeploymentPlan, override_reason: str = "", scheduled: bool = False
) -> DeploymentPlan:
    """Continue Deployment of a prepared (or suspended) plan; ``scheduled``: beat starting a
    scheduled Continue, which applies only to a plan still scheduled.

    Outside the target's deployment window: refused when the target enforces its window, unless
    ``override_reason`` says why (kept in the audit trail); otherwise a warning in the plan's log.
    """
    _require(actor, plan.target, AccessLevel.DEPLOY)
    plan.refresh_from_db()
    target = plan.target
    drift.refuse_if_drifted(target, doing="Continue")
    now = timezone.now()
    if plan.is_running:
        raise AlreadyRunning("The deployment is already running.")
    if not plan.may_continue:
        raise PlanRefused(f"The plan is {plan.state_label.lower()}: there is nothing to continue.")
    waiting_for_approvals = approvals.refusal_sentence(plan)
    if waiting_for_approvals:
        raise approvals.ApprovalsMissing(waiting_for_approvals)
    override_reason = (override_reason or "").strip()
    freeze = _freeze_check(actor, target, now, override_reason, what="continue")
    outside = target.has_window and not target.window_open(now)
    if outside and target.enforce_window and not override_reason:
        raise OutsideWindow(
            f"Outside the deployment window: {window_sentence(target, now)}. "
            "Schedule Continue for the window, or give a reason to continue now."
        )
    problems = check_still_valid(plan)
    if problems:
        raise PlanRefused("The target changed since Prepare: " + "; ".join(problems) + ". Prepare again.")
    too_long = _estimate_refusal(plan, now) if target.has_window and not outside else None
    if too_long:
        if not override_reason:
            raise EstimateDoesNotFit(too_long)
        if not _can_manage(actor, target):
            raise EstimateDoesNotFit(
                too_long.split(": a user with")[0] + f": only a user with the manage right on {target.name} may "
                "continue it anyway."
            )
    with transaction.atomic():
        _run_stage(
            plan,
            expected=frozenset({P.SCHEDULED}) if scheduled else machine.CONTINUABLE,
            to=P.CONTINUING,
            kind=StageKind.CONTINUE,
            actor=actor,
            reason=("Scheduled Continue" if scheduled else "Continue Deployment")
            + (f" during a freeze: {override_reason}" if freeze is not None else "")
            + (f" outside the window: {override_reason}" if outside and override_reason else ""),
            audit_action="plan.continued",
            refused="there is nothing to continue.",
            fields={
                "continued_at": now,
                "continued_by": actor.user,
                "continue_scheduled_at": None,
                "continue_scheduled_by": None,
            },
        )
        _overrides_written(actor, plan, now, override_reason, freeze=freeze, outside=outside, what="Continued")
        if too_long:
            append_log(
                plan,
                "warning",
                f"{too_long.split(': a user with')[0]}; continued anyway by {actor.name}: {override_reason}",
            )
            plan_audit.record(actor, "plan.estimate_overridden", plan, message=f"{too_long} Reason: {override_reason}")
    return plan


def _can_manage(actor: Actor, environment: Environment) -> bool:
    if actor.is_system:
        return False  # the system never overrides an estimate on its own
    return access.can(actor.user, environment, AccessLevel.MANAGE)


def _estimate_refusal(plan: DeploymentPlan, now: dt.datetime) -> str | None:
    """The estimate's refusal sentence when its pessimistic end exceeds what is left of the open window."""
    generated = list(GeneratedSql.objects.filter(plan=plan))
    frontends = plan.target.frontends.filter(enabled=True).count()
    estimate = continue_estimate(plan, generated, frontends, now=now)
    return estimate.refusal() if estimate.window_open else None


def schedule_continue(*, actor: Actor, plan: DeploymentPlan, at: dt.datetime | None = None) -> DeploymentPlan:
    """Continue a prepared plan at ``at`` (default: the start of the target's next window)."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    plan.refresh_from_db()
    if not plan.is_prepared:
        raise PlanRefused("Only a prepared plan can have its Continue scheduled.")
    now = timezone.now()
    if at is None:
        window = plan.target.window_at(now)
        if window is None:
            raise PlanRefused(f"{plan.target.name} has no deployment window: choose a time.")
        if window[0] <= now and plan.target.frozen_at(now) is None:
            raise PlanRefused("The deployment window is open now: Continue Deployment.")
        # The next window that opens outside every freeze.
        window = plan.target.next_window_outside_freezes(now)
        if window is None:
            raise PlanRefused(f"{plan.target.name} has no window outside a freeze in the next two months.")
        at = window[0]
    if at <= now:
        raise PlanRefused("Choose a time in the future.")
    frozen = plan.target.frozen_at(at)
    if frozen is not None:
        raise Frozen(f"{timezone.localtime(at):%Y-%m-%d %H:%M} is in a freeze: {frozen.sentence(plan.target.name)}.")
    if plan.target.enforce_window and plan.target.has_window and not plan.target.window_open(at):
        raise OutsideWindow(
            f"{timezone.localtime(at):%Y-%m-%d %H:%M} is outside {plan.target.name}'s deployment window."
        )
    expires = plan.expires_at
    if expires is not None and at >= expires:
        raise PlanRefused(
            f"The prepared plan expires at {timezone.localtime(expires):%Y-%m-%d %H:%M}: choose an earlier time."
        )
    when = f"{timezone.localtime(at):%Y-%m-%d %H:%M %Z}"
    with transaction.atomic():
        try:
            if plan.is_scheduled:
                # Another time: the earlier schedule is cancelled first, both moves in the history.
                moves.move_plan(
                    plan,
                    expected={P.SCHEDULED},
                    to=P.PREPARED,
                    actor=actor,
                    reason="Scheduled Continue replaced",
                    fields={"continue_scheduled_at": None, "continue_scheduled_by": None},
                )
            moves.move_plan(
                plan,
                expected={P.PREPARED},
                to=P.SCHEDULED,
                actor=actor,
                reason=f"Continue scheduled for {when}",
                fields={"continue_scheduled_at": at, "continue_scheduled_by": actor.user},
            )
        except TransitionLost:
            raise PlanRefused("The plan moved on meanwhile: reload and try again.") from None
        append_log(plan, "info", f"Continue scheduled for {when} by {actor.name}.")
        waiting = approvals.refusal_sentence(plan)
        if waiting:
            append_log(plan, "info", f"The scheduled Continue waits for its approvals: {waiting}")
        plan_audit.record(actor, "plan.continue_scheduled", plan, changes={"continue_at": [None, at.isoformat()]})
    return plan


def cancel_scheduled_continue(*, actor: Actor, plan: DeploymentPlan) -> DeploymentPlan:
    _require(actor, plan.target, AccessLevel.DEPLOY)
    with transaction.atomic():
        try:
            moves.move_plan(
                plan,
                expected={P.SCHEDULED},
                to=P.PREPARED,
                actor=actor,
                reason="Scheduled Continue cancelled",
                fields={"continue_scheduled_at": None, "continue_scheduled_by": None},
            )
        except TransitionLost:
            plan.refresh_from_db()
            return plan  # nothing scheduled (any more): nothing to cancel
        append_log(plan, "info", f"Scheduled Continue cancelled by {actor.name}.")
        plan_audit.record(actor, "plan.continue_unscheduled", plan)
    return plan


def run_scheduled_continues(*, now: dt.datetime | None = None) -> list[DeploymentPlan]:
    """Continue the scheduled plans whose time has come, as the person who scheduled them. A
    Continue that cannot start goes back to prepared, with the reason in the log and the history."""
    now = now or timezone.now()
    started = []
    due = DeploymentPlan.objects.select_related("target", "continue_scheduled_by").filter(
        state=P.SCHEDULED, continue_scheduled_at__lte=now
    )
    for plan in due:
        user = plan.continue_scheduled_by
        try:
            if user is None:
                raise PlanRefused("the person who scheduled it no longer exists")
            continue_plan(actor=Actor.person(user), plan=plan, scheduled=True)
        except AlreadyRunning:
            continue  # another beat (or a person) continued it first
        except approvals.ApprovalsMissing:
            continue  # it waits, scheduled, for its approvals; the next beat asks again
        except (Refusal, PermissionDenied) as exc:
            try:
                moves.move_plan(
                    plan,
                    expected={P.SCHEDULED},
                    to=P.PREPARED,
                    actor=Actor.system("beat"),
                    reason=f"The scheduled Continue did not start: {exc}",
                    fields={"continue_scheduled_at": None, "continue_scheduled_by": None},
                )
            except TransitionLost:
                continue
            append_log(plan, "error", f"The scheduled Continue did not start: {exc}")
            continue
        started.append(plan)
    return started


def prepare_again(*, actor: Actor, plan: DeploymentPlan) -> DeploymentPlan:
    """Run Prepare again on a prepared or suspended plan (after the target changed)."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    drift.refuse_if_drifted(plan.target, doing="Prepare")
    validation = validate_plan(plan)
    if not validation.ok:
        raise PlanInvalid(validation)
    return _run_stage(
        plan,
        expected=machine.PREPARABLE_AGAIN,
        to=P.PREPARING,
        kind=StageKind.PREPARE,
        actor=actor,
        reason="Prepare again",
        audit_action="plan.prepared_again",
        refused="it cannot be prepared again.",
        fields={"continue_scheduled_at": None, "continue_scheduled_by": None},
    )


def abort_plan(*, actor: Actor, plan: DeploymentPlan, reason: str = "Abort") -> DeploymentPlan:
    """Abort until the Continue stage changes the target (the point of no return)."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    plan.refresh_from_db()
    now = timezone.now()
    with transaction.atomic():
        try:
            if plan.state in machine.ABORTS_AT_ONCE:
                # Nothing runs: straight to aborted (pipelines read a lingering "aborting" as success).
                moves.move_plan(
                    plan,
                    expected=machine.ABORTS_AT_ONCE,
                    to=P.ABORTED,
                    actor=actor,
                    reason=reason,
                    fields={"aborted_at": now, "aborted_by": actor.user},
                )
            elif plan.state in machine.ABORT_ASKS_STAGE:
                moves.move_plan(
                    plan,
                    expected=machine.ABORT_ASKS_STAGE,
                    to=P.ABORTING,
                    actor=actor,
                    reason=reason,
                    fields={"aborted_by": actor.user},
                )
                # If no stage actually runs (queued, or its worker is gone), finish the abort now.
                if not moves.has_running_stage(plan):
                    moves.cancel_queued_stages(plan, explanation="Aborted before it started.")
                    moves.move_plan(
                        plan,
                        expected={P.ABORTING},
                        to=P.ABORTED,
                        actor=actor,
                        reason="Aborted before the stage started",
                        fields={"aborted_at": now},
                    )
            elif plan.state == P.ABORTING:
                raise AlreadyRunning("The plan is already being aborted.")
            elif plan.past_point_of_no_return:
                raise PlanRefused("Too late to abort: Continue has changed the target (the point of no return).")
            else:
                raise PlanRefused(f"The plan is {plan.state_label.lower()}: it cannot be aborted.")
        except TransitionLost:
            plan.refresh_from_db()
            if plan.past_point_of_no_return:
                raise PlanRefused(
                    "Too late to abort: Continue has changed the target (the point of no return)."
                ) from None
            raise PlanRefused("The plan moved on meanwhile: reload and try again.") from None
        plan_audit.record(actor, "plan.aborted", plan)
    return plan


def retry_plan(*, actor: Actor, plan: DeploymentPlan) -> DeploymentPlan:
    """An aborted plan goes back to saved, operations kept."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    try:
        moves.move_plan(
            plan,
            expected={P.ABORTED},
            to=P.SAVED,
            actor=actor,
            reason="Retry",
            fields={"saved_at": timezone.now(), "point_of_no_return_at": None, "prepared_snapshot": {}},
        )
    except TransitionLost as exc:
        raise PlanRefused(
            f"The plan is {machine.label(exc.current or '').lower()}: only aborted plans can be retried."
        ) from None
    plan_audit.record(actor, "plan.retried", plan)
    return plan


def reuse_plan(*, actor: Actor, plan: DeploymentPlan) -> DeploymentPlan:
    """A new saved plan with the same source, target and operations."""
    ops = [
        Operation(op.application, op.version, op.zone)
        for op in plan.operations.select_related("application", "version", "zone")
    ]
    return create_plan(actor=actor, source=plan.source, target=plan.target, operations=ops, notes=plan.notes)


def expire_prepared_plans(*, now: dt.datetime | None = None) -> list[DeploymentPlan]:
    """Prepared plans older than their target's limit expire and release the environment."""
    now = now or timezone.now()
    expired = []
    candidates = DeploymentPlan.objects.select_related("target").filter(
        state__in=machine.EXPIRABLE, prepared_at__isnull=False
    )
    for plan in candidates:
        hours = plan.target.prepared_plan_ttl_hours
        if plan.expires_at is None or plan.expires_at > now:
            continue
        try:
            moves.move_plan(
                plan,
                expected=machine.EXPIRABLE,
                to=P.ABORTED,
                actor=Actor.system("beat"),
                reason=f"Expired: not continued within {hours} hours of Prepare",
                fields={"aborted_at": now},
            )
        except TransitionLost:
            continue
        append_log(plan, "warning", f"The prepared plan expired after {hours} hours.")
        expired.append(plan)
    return expired


# --- roll back ----------------------------------------------------------------------------------


def rollback_plan(*, actor: Actor, plan: DeploymentPlan, applications: list[str] | None = None) -> DeploymentPlan:
    """Roll Back a finished plan (or only ``applications`` of it): every front-end of its target goes
    back to the releases that ran before it, in a stage of its own. Refused, with the reasons, when
    that cannot be done safely."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    plan.refresh_from_db()
    if not plan.may_roll_back:
        if plan.is_rolling_back:
            raise AlreadyRunning("The plan is already being rolled back.")
        raise PlanRefused(f"The plan is {plan.state_label.lower()}: only a finished plan can be rolled back.")
    operations = rollback.operations_to_roll_back(plan, applications)
    if applications is not None and len(operations) != len(set(applications)):
        found = {op.application.name for op in operations}
        missing = sorted(set(applications) - found)
        raise PlanRefused("The plan has no operation left to roll back for " + ", ".join(missing) + ".")
    # Asking the agents takes a moment: outside the transaction that takes the target.
    problems = rollback.refusals(plan, operations)
    if problems:
        raise PlanRefused("Cannot roll back: " + " ".join(problems))
    now = timezone.now()
    with transaction.atomic():
        Environment.objects.select_for_update().get(pk=plan.target_id)
        holder = moves.holder_of(plan.target_id, excluding=plan.pk)
        if holder is not None:
            raise TargetHeld(holder)
        # A plan that finished there while the agents answered: the stage checks again before it switches.
        PlanOperation.objects.filter(pk__in=[op.pk for op in operations]).update(rollback_requested_at=now)
        names = ", ".join(op.application.name for op in operations)
        _run_stage(
            plan,
            expected=machine.ROLLBACKABLE,
            to=P.ROLLING_BACK,
            kind=StageKind.ROLLBACK,
            actor=actor,
            reason=f"Roll Back ({names})",
            audit_action="plan.rollback",
            refused="it cannot be rolled back.",
            fields={"finished_at": plan.finished_at},
        )
    return plan


def rollback_application(*, actor: Actor, environment: Environment, application: Application) -> DeploymentPlan:
    """Roll Back one application from the board: the plan that deployed what runs there now."""
    _require(actor, environment, AccessLevel.DEPLOY)
    running = RunningVersion.objects.filter(environment=environment, application=application).first()
    plan = running.plan if running is not None else None
    if plan is None:
        raise PlanRefused(
            f"No plan deployed what runs of {application.name} in {environment.name}: nothing to roll back."
        )
    return rollback_plan(actor=actor, plan=plan, applications=[application.name])


# --- settings only --------------------------------------------------------------------------------


def create_settings_plan(*, actor: Actor, environment: Environment, application: Application) -> DeploymentPlan:
    """The small plan that applies an application's settings in ``environment`` and changes nothing
    else: the version that runs there, deployed again (nothing to compile, no SQL, nothing to
    upload; its settings switched on every front-end). From the environment before it in the
    promotion path (or after it, for the first)."""
    running = RunningVersion.objects.filter(environment=environment, application=application).select_related("version")
    row = running.first()
    if row is None:
        raise PlanRefused(
            f"{application.name} does not run in {environment.name}: deploy it with its settings instead."
        )
    others = Environment.objects.exclude(pk=environment.pk)
    source = others.filter(order__lt=environment.order).order_by("-order").first() or others.order_by("order").first()
    if source is None:
        raise PlanRefused("A plan needs another environment as its source.")
    return create_plan(
        actor=actor,
        source=source,
        target=environment,
        operations=[Operation(application, row.version)],
        notes=f"Apply the settings of {application.name} in {environment.name} ({row.version.version} again).",
    )
