"""Deployment plans: create, validate, save, delete, start, continue, abort, retry, reuse.

Rights are checked here as well as in the views and the API, so every door is the same door.
Stage tasks are enqueued only after the transaction that created the stage commits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from deployments import transitions
from deployments.models import (
    Application,
    ApplicationKind,
    ApplicationVersion,
    DeploymentPlan,
    MobileAppConfig,
    OperationKind,
    PlanOperation,
    PlanStatus,
    RunningVersion,
    Stage,
    StageKind,
    StageStatus,
)
from deployments.transitions import INFO_PREPARED, INFO_SUSPENDED, TargetHeld, TransitionLost
from environments import access
from environments.models import AccessLevel, Environment
from lifetime import audit

S = PlanStatus


class PlanRefused(Exception):
    """The action cannot be done now; the message says why (shown as is, 400 in the API)."""


class PlanInvalid(PlanRefused):
    def __init__(self, validation: Validation) -> None:
        self.validation = validation
        super().__init__("The plan has errors: " + "; ".join(validation.errors))


class AlreadyRunning(PlanRefused):
    """Somebody pressed the same button first (409 in the API)."""


class OutsideWindow(PlanRefused):
    """The target refuses Continue outside its deployment window unless a reason is given."""


class EstimateDoesNotFit(PlanRefused):
    """The pessimistic Continue estimate exceeds the time left in the window: only a user with the
    manage right may continue, with a reason (audited)."""


__all__ = ["AlreadyRunning", "PlanInvalid", "PlanRefused", "TargetHeld", "TransitionLost"]


@dataclasses.dataclass
class Operation:
    application: Application
    version: ApplicationVersion | None  # None: undeploy


@dataclasses.dataclass
class Suggestion:
    application: Application
    version: ApplicationVersion
    reason: str


@dataclasses.dataclass
class Validation:
    errors: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    suggestions: list[Suggestion] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --- building plans ---------------------------------------------------------------------------


def _require(actor: Any, environment: Environment, level: int) -> None:
    if actor is None or isinstance(actor, str):
        return  # the system itself (beat, demo loader)
    access.require(actor, environment, level)


def create_plan(
    *,
    actor: Any,
    source: Environment,
    target: Environment,
    operations: list[Operation],
    notes: str = "",
) -> DeploymentPlan:
    if source.pk == target.pk:
        raise PlanRefused("The source and the target must be different environments.")
    _require(actor, target, AccessLevel.DEPLOY)
    _require(actor, source, AccessLevel.VIEW)
    with transaction.atomic():
        plan = DeploymentPlan.objects.create(
            source=source,
            target=target,
            notes=notes,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            saved_at=timezone.now(),
        )
        _write_operations(plan, operations)
        _audit(actor, "plan.created", plan, changes={"operations": [_op_label(op) for op in operations]})
    return plan


def _op_label(op: Operation) -> str:
    return f"{op.application.name} {op.version.version}" if op.version else f"undeploy {op.application.name}"


def _write_operations(plan: DeploymentPlan, operations: list[Operation]) -> None:
    seen: set[int] = set()
    for op in operations:
        if op.application.pk in seen:
            raise PlanRefused(f"{op.application.name} appears twice in the plan.")
        seen.add(op.application.pk)
        if op.version is not None and op.version.application_id != op.application.pk:
            raise PlanRefused(f"Version {op.version.version} is not a version of {op.application.name}.")
    plan.operations.all().delete()
    PlanOperation.objects.bulk_create(
        PlanOperation(
            plan=plan,
            application=op.application,
            version=op.version,
            kind=OperationKind.DEPLOY if op.version else OperationKind.UNDEPLOY,
        )
        for op in operations
    )


def update_plan(*, actor: Any, plan: DeploymentPlan, operations: list[Operation], notes: str) -> DeploymentPlan:
    _require(actor, plan.target, AccessLevel.DEPLOY)
    with transaction.atomic():
        locked = DeploymentPlan.objects.select_for_update().get(pk=plan.pk)
        if locked.status != S.SAVED:
            raise PlanRefused("Only a saved plan can be changed.")
        locked.notes = notes
        locked.saved_at = timezone.now()
        locked.save(update_fields=["notes", "saved_at"])
        _write_operations(locked, operations)
        _audit(actor, "plan.saved", plan, changes={"operations": [_op_label(op) for op in operations]})
    return locked


def delete_plan(*, actor: Any, plan: DeploymentPlan) -> None:
    _require(actor, plan.target, AccessLevel.DEPLOY)
    with transaction.atomic():
        deleted, _ = DeploymentPlan.objects.filter(pk=plan.pk, status=S.SAVED).delete()
        if not deleted:
            raise PlanRefused("Only saved plans can be deleted.")
        _audit(actor, "plan.deleted", plan)


# --- validation -------------------------------------------------------------------------------


def _dependencies(version: ApplicationVersion) -> list[tuple[str, str]]:
    """``[(application name, PEP 440 specifier)]`` from the manifest."""
    deps = (version.manifest or {}).get("dependencies") or []
    if isinstance(deps, dict):
        return [(name, str(spec or "")) for name, spec in deps.items()]
    out = []
    for dep in deps:
        if isinstance(dep, dict):
            out.append((str(dep.get("application") or dep.get("name")), str(dep.get("version") or "")))
    return out


def _satisfies(version: str, spec: str) -> bool:
    try:
        return Version(version) in SpecifierSet(spec or "")
    except (InvalidVersion, InvalidSpecifier):
        return False


def validate_plan(plan: DeploymentPlan) -> Validation:
    """LifeTime's Validate: versions exist, dependencies hold in the target after the plan, mobile apps configured."""
    result = Validation()
    operations = list(plan.operations.select_related("application", "version"))
    if not operations:
        result.errors.append("Add at least one application to deploy.")
        return result
    running = {
        rv.application.name: rv
        for rv in RunningVersion.objects.filter(environment=plan.target).select_related("application", "version")
    }
    after: dict[str, str] = {name: rv.version.version for name, rv in running.items()}
    for op in operations:
        if op.kind == OperationKind.UNDEPLOY:
            after.pop(op.application.name, None)
        elif op.version is None:
            result.errors.append(f"{op.application.name}: the version to deploy no longer exists.")
        else:
            after[op.application.name] = op.version.version
    source_running = {
        rv.application.name: rv
        for rv in RunningVersion.objects.filter(environment=plan.source).select_related("application", "version")
    }
    for op in operations:
        if op.version is None:
            continue
        current = running.get(op.application.name)
        if current and current.version_id == op.version_id:
            result.warnings.append(
                f"{op.application.name} {op.version.version} already runs in {plan.target.name}: it will be redeployed."
            )
        for dep_name, spec in _dependencies(op.version):
            have = after.get(dep_name)
            if have is not None and _satisfies(have, spec):
                continue
            need = f"{dep_name} {spec}".strip()
            message = (
                f"{op.application.name} {op.version.version} needs {need}, but {plan.target.name} "
                + (f"would run {dep_name} {have}" if have else f"would not run {dep_name}")
                + " after this plan."
            )
            result.errors.append(message)
            producer = source_running.get(dep_name)
            if producer and _satisfies(producer.version.version, spec):
                result.suggestions.append(
                    Suggestion(producer.application, producer.version, f"add {dep_name} {producer.version.version}")
                )
        if op.application.kind == ApplicationKind.MOBILE:
            if not MobileAppConfig.objects.filter(environment=plan.target, application=op.application).exists():
                result.errors.append(f"configure the mobile app {op.application.name} in {plan.target.name} first")
    # An application undeployed while another one needs it.
    for op in operations:
        if op.kind != OperationKind.UNDEPLOY:
            continue
        for name, rv in running.items():
            if name in after and any(dep == op.application.name for dep, _ in _dependencies(rv.version)):
                result.errors.append(f"{name} needs {op.application.name}: it cannot be undeployed.")
    return result


def add_suggestion(*, actor: Any, plan: DeploymentPlan, application: Application) -> DeploymentPlan:
    """Add the missing producer a validation suggested (the version running in the source)."""
    running = RunningVersion.objects.filter(environment=plan.source, application=application).first()
    if running is None:
        raise PlanRefused(f"{application.name} does not run in {plan.source.name}.")
    ops = [Operation(op.application, op.version) for op in plan.operations.select_related("application", "version")]
    ops = [op for op in ops if op.application.pk != application.pk] + [Operation(application, running.version)]
    return update_plan(actor=actor, plan=plan, operations=ops, notes=plan.notes)


# --- running ----------------------------------------------------------------------------------


def _enqueue(stage: Stage) -> None:
    from deployments.tasks import run_stage

    transaction.on_commit(lambda: run_stage.apply_async(args=[stage.pk], queue="stages"))


def new_stage(plan: DeploymentPlan, kind: str, *, actor: Any, attempt: int = 1) -> Stage:
    stage = Stage.objects.create(
        plan=plan,
        kind=kind,
        attempt=attempt,
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    _enqueue(stage)
    return stage


def _run_stage(
    plan: DeploymentPlan,
    *,
    expected: str,
    kind: str,
    actor: Any,
    reason: str,
    audit_action: str,
    refused: str,
    fields: dict[str, Any] | None = None,
) -> DeploymentPlan:
    """Move the plan to running and queue the stage, in one transaction (the task is sent on commit).

    Losing the compare-and-set to a plan that is running now is a double click, a second user or a
    pipeline: "already running". Any other status means the button no longer applies.
    """
    with transaction.atomic():
        try:
            transitions.transition(plan, expected=expected, to=S.RUNNING, actor=actor, reason=reason, fields=fields)
        except TransitionLost as exc:
            if exc.current in {S.RUNNING, S.ABORTING}:
                raise AlreadyRunning("The deployment is already running.") from None
            raise PlanRefused(f"The plan is {exc.current}: {refused}") from None
        new_stage(plan, kind, actor=actor)
        _audit(actor, audit_action, plan)
    return plan


def start_plan(*, actor: Any, plan: DeploymentPlan) -> DeploymentPlan:
    """Prepare (two-stage target) or Deploy Now (both stages back to back)."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    validation = validate_plan(plan)
    if not validation.ok:
        raise PlanInvalid(validation)
    with transaction.atomic():
        # Serialise starts on the same target; the partial unique index backs this up.
        Environment.objects.select_for_update().get(pk=plan.target_id)
        holder = transitions.holder_of(plan.target_id, excluding=plan.pk)
        if holder is not None:
            raise TargetHeld(holder)
        return _run_stage(
            plan,
            expected=S.SAVED,
            kind=StageKind.PREPARE,
            actor=actor,
            reason="Prepare Deployment" if plan.target.two_stage_deployments else "Deploy Now",
            audit_action="plan.started",
            refused="it cannot be started.",
            fields={"started_at": timezone.now(), "started_by": _user(actor)},
        )


def _window_sentence(target: Environment, now) -> str:
    window = target.window_at(now)
    if window is None:
        return f"{target.name} has no deployment window"
    start = timezone.localtime(window[0], window[0].tzinfo)
    return f"{target.name}'s window ({target.window_label()}) opens {start:%a %Y-%m-%d %H:%M %Z}"


def continue_plan(*, actor: Any, plan: DeploymentPlan, override_reason: str = "") -> DeploymentPlan:
    """Continue Deployment of a prepared (or suspended) plan.

    Outside the target's deployment window: refused when the target enforces its window, unless
    ``override_reason`` says why (kept in the audit trail); otherwise a warning in the plan's log.
    """
    _require(actor, plan.target, AccessLevel.DEPLOY)
    plan.refresh_from_db()
    target = plan.target
    now = timezone.now()
    outside = target.has_window and not target.window_open(now)
    override_reason = (override_reason or "").strip()
    if outside and target.enforce_window and not override_reason and plan.status == S.NEEDS_USER_INTERVENTION:
        raise OutsideWindow(
            f"Outside the deployment window: {_window_sentence(target, now)}. "
            "Schedule Continue for the window, or give a reason to continue now."
        )
    if plan.status in {S.RUNNING, S.ABORTING}:
        raise AlreadyRunning("The deployment is already running.")
    if plan.status != S.NEEDS_USER_INTERVENTION:
        raise PlanRefused(f"The plan is {plan.get_status_display().lower()}: there is nothing to continue.")
    from deployments.stages.validity import check_still_valid

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
            expected=S.NEEDS_USER_INTERVENTION,
            kind=StageKind.CONTINUE,
            actor=actor,
            reason="Continue Deployment"
            + (f" outside the window: {override_reason}" if outside and override_reason else ""),
            audit_action="plan.continued",
            refused="there is nothing to continue.",
            fields={
                "continued_at": now,
                "continued_by": _user(actor),
                "continue_scheduled_at": None,
                "continue_scheduled_by": None,
            },
        )
        if outside:
            from deployments.stages.log import append_log

            append_log(
                plan,
                "warning",
                f"Continued outside the deployment window ({_window_sentence(target, now)})"
                + (f": {override_reason}" if override_reason else "."),
            )
            if override_reason:
                _audit(actor, "plan.window_overridden", plan, message=override_reason)
        if too_long:
            from deployments.stages.log import append_log

            who = getattr(actor, "username", "system")
            append_log(
                plan, "warning", f"{too_long.split(': a user with')[0]}; continued anyway by {who}: {override_reason}"
            )
            _audit(actor, "plan.estimate_overridden", plan, message=f"{too_long} Reason: {override_reason}")
    return plan


def _can_manage(actor: Any, environment: Environment) -> bool:
    if actor is None or isinstance(actor, str):
        return False  # the system never overrides an estimate on its own
    return access.can(actor, environment, AccessLevel.MANAGE)


def _estimate_refusal(plan: DeploymentPlan, now) -> str | None:
    """The estimate's refusal sentence when its pessimistic end exceeds what is left of the open window."""
    from deployments import progress
    from deployments.models import GeneratedSql

    generated = list(GeneratedSql.objects.filter(plan=plan))
    frontends = plan.target.frontends.filter(enabled=True).count()
    estimate = progress.continue_estimate(plan, generated, frontends, now=now)
    return estimate.refusal() if estimate.window_open else None


def schedule_continue(*, actor: Any, plan: DeploymentPlan, at=None) -> DeploymentPlan:
    """Continue a prepared plan at ``at`` (default: the start of the target's next window)."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    plan.refresh_from_db()
    if not is_prepared(plan):
        raise PlanRefused("Only a prepared plan can have its Continue scheduled.")
    now = timezone.now()
    if at is None:
        window = plan.target.window_at(now)
        if window is None:
            raise PlanRefused(f"{plan.target.name} has no deployment window: choose a time.")
        if window[0] <= now:
            raise PlanRefused("The deployment window is open now: Continue Deployment.")
        at = window[0]
    if at <= now:
        raise PlanRefused("Choose a time in the future.")
    if plan.target.enforce_window and plan.target.has_window and not plan.target.window_open(at):
        raise OutsideWindow(
            f"{timezone.localtime(at):%Y-%m-%d %H:%M} is outside {plan.target.name}'s deployment window."
        )
    expires = plan.prepared_at + timezone.timedelta(hours=plan.target.prepared_plan_ttl_hours)
    if at >= expires:
        raise PlanRefused(
            f"The prepared plan expires at {timezone.localtime(expires):%Y-%m-%d %H:%M}: choose an earlier time."
        )
    with transaction.atomic():
        moved = DeploymentPlan.objects.filter(pk=plan.pk, status=S.NEEDS_USER_INTERVENTION, info=INFO_PREPARED).update(
            continue_scheduled_at=at, continue_scheduled_by=_user(actor)
        )
        if not moved:
            raise PlanRefused("The plan moved on meanwhile: reload and try again.")
        from deployments.stages.log import append_log

        who = getattr(actor, "username", "system")
        append_log(plan, "info", f"Continue scheduled for {timezone.localtime(at):%Y-%m-%d %H:%M %Z} by {who}.")
        _audit(actor, "plan.continue_scheduled", plan, changes={"continue_at": [None, at.isoformat()]})
    plan.refresh_from_db()
    return plan


def cancel_scheduled_continue(*, actor: Any, plan: DeploymentPlan) -> DeploymentPlan:
    _require(actor, plan.target, AccessLevel.DEPLOY)
    with transaction.atomic():
        moved = DeploymentPlan.objects.filter(pk=plan.pk, continue_scheduled_at__isnull=False).update(
            continue_scheduled_at=None, continue_scheduled_by=None
        )
        if moved:
            from deployments.stages.log import append_log

            append_log(plan, "info", f"Scheduled Continue cancelled by {getattr(actor, 'username', 'system')}.")
            _audit(actor, "plan.continue_unscheduled", plan)
    plan.refresh_from_db()
    return plan


def run_scheduled_continues(*, now=None) -> list[DeploymentPlan]:
    """Continue the prepared plans whose time has come, as the user who scheduled them."""
    from deployments.stages.log import append_log

    now = now or timezone.now()
    started = []
    due = DeploymentPlan.objects.select_related("target", "continue_scheduled_by").filter(
        status=S.NEEDS_USER_INTERVENTION, info=INFO_PREPARED, continue_scheduled_at__lte=now
    )
    for plan in due:
        actor = plan.continue_scheduled_by
        # Claim the schedule first: a second beat (or a slow one) never continues twice.
        if not DeploymentPlan.objects.filter(pk=plan.pk, continue_scheduled_at__isnull=False).update(
            continue_scheduled_at=None
        ):
            continue
        try:
            continue_plan(actor=actor, plan=plan)
        except (PlanRefused, PermissionDenied, TargetHeld) as exc:
            append_log(plan, "error", f"The scheduled Continue did not start: {exc}")
            continue
        started.append(plan)
    return started


def prepare_again(*, actor: Any, plan: DeploymentPlan) -> DeploymentPlan:
    """Run Prepare again on a prepared or suspended plan (after the target changed)."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    validation = validate_plan(plan)
    if not validation.ok:
        raise PlanInvalid(validation)
    return _run_stage(
        plan,
        expected=S.NEEDS_USER_INTERVENTION,
        kind=StageKind.PREPARE,
        actor=actor,
        reason="Prepare again",
        audit_action="plan.prepared_again",
        refused="it cannot be prepared again.",
    )


def abort_plan(*, actor: Any, plan: DeploymentPlan, reason: str = "Abort") -> DeploymentPlan:
    """Abort until the Continue stage executes its first SQL statement (the point of no return)."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    plan.refresh_from_db()
    with transaction.atomic():
        if plan.status == S.NEEDS_USER_INTERVENTION:
            # Nothing runs: straight to aborted (pipelines read a lingering "aborting" as success).
            try:
                transitions.transition(
                    plan,
                    expected=S.NEEDS_USER_INTERVENTION,
                    to=S.ABORTED,
                    actor=actor,
                    reason=reason,
                    fields={"aborted_at": timezone.now(), "aborted_by": _user(actor)},
                )
            except TransitionLost:
                raise PlanRefused("The plan moved on meanwhile: reload and try again.") from None
        elif plan.status == S.RUNNING:
            try:
                transitions.transition(
                    plan,
                    expected=S.RUNNING,
                    to=S.ABORTING,
                    actor=actor,
                    reason=reason,
                    extra_filter=Q(point_of_no_return_at__isnull=True),
                    fields={"aborted_by": _user(actor)},
                )
            except TransitionLost:
                plan.refresh_from_db()
                if plan.point_of_no_return_at:
                    raise PlanRefused(
                        "Too late to abort: Continue has executed SQL on the target (the point of no return)."
                    ) from None
                raise PlanRefused(f"The plan is {plan.status}: it cannot be aborted.") from None
            # If no stage is actually running (queued, or its worker is gone), finish the abort now.
            if not Stage.objects.filter(plan=plan, status=StageStatus.RUNNING).exists():
                Stage.objects.filter(plan=plan, status=StageStatus.QUEUED).update(
                    status=StageStatus.CANCELLED, finished_at=timezone.now(), explanation="Aborted before it started."
                )
                transitions.transition(
                    plan,
                    expected=S.ABORTING,
                    to=S.ABORTED,
                    actor=actor,
                    reason="Aborted before the stage started",
                    fields={"aborted_at": timezone.now()},
                )
        elif plan.status == S.ABORTING:
            raise AlreadyRunning("The plan is already being aborted.")
        else:
            raise PlanRefused(f"The plan is {plan.get_status_display().lower()}: it cannot be aborted.")
        _audit(actor, "plan.aborted", plan)
    return plan


def retry_plan(*, actor: Any, plan: DeploymentPlan) -> DeploymentPlan:
    """An aborted plan goes back to saved, operations kept."""
    _require(actor, plan.target, AccessLevel.DEPLOY)
    try:
        transitions.transition(
            plan,
            expected=S.ABORTED,
            to=S.SAVED,
            actor=actor,
            reason="Retry",
            fields={"saved_at": timezone.now(), "point_of_no_return_at": None, "prepared_snapshot": {}},
        )
    except TransitionLost as exc:
        raise PlanRefused(f"The plan is {exc.current}: only aborted plans can be retried.") from None
    _audit(actor, "plan.retried", plan)
    return plan


def reuse_plan(*, actor: Any, plan: DeploymentPlan) -> DeploymentPlan:
    """A new saved plan with the same source, target and operations."""
    ops = [Operation(op.application, op.version) for op in plan.operations.select_related("application", "version")]
    return create_plan(actor=actor, source=plan.source, target=plan.target, operations=ops, notes=plan.notes)


def expire_prepared_plans(*, now=None) -> list[DeploymentPlan]:
    """Prepared plans older than their target's limit expire and release the environment."""
    now = now or timezone.now()
    expired = []
    candidates = DeploymentPlan.objects.select_related("target").filter(
        status=S.NEEDS_USER_INTERVENTION, prepared_at__isnull=False
    )
    for plan in candidates:
        if plan.prepared_at + timezone.timedelta(hours=plan.target.prepared_plan_ttl_hours) > now:
            continue
        try:
            transitions.transition(
                plan,
                expected=S.NEEDS_USER_INTERVENTION,
                to=S.ABORTED,
                actor="system",
                reason=f"Expired: not continued within {plan.target.prepared_plan_ttl_hours} hours of Prepare",
                fields={"aborted_at": now},
            )
        except TransitionLost:
            continue
        from deployments.stages.log import append_log

        append_log(plan, "warning", f"The prepared plan expired after {plan.target.prepared_plan_ttl_hours} hours.")
        expired.append(plan)
    return expired


def _user(actor: Any):
    return actor if getattr(actor, "is_authenticated", False) else None


def _audit(actor: Any, action: str, plan: DeploymentPlan, *, changes: dict | None = None, message: str = "") -> None:
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


def is_prepared(plan: DeploymentPlan) -> bool:
    return plan.status == S.NEEDS_USER_INTERVENTION and plan.info == INFO_PREPARED


def is_suspended(plan: DeploymentPlan) -> bool:
    return plan.status == S.NEEDS_USER_INTERVENTION and plan.info == INFO_SUSPENDED
