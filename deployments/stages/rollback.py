"""Roll Back: switch every front-end of the target back to the releases that ran before a finished
plan (all of its applications, or one), all or nothing, through the same switch step as Continue.

No SQL runs: the SQL a plan ran only added (the old code keeps working against the new schema),
and a hand-written script that does not keep it working is marked ``backward_compatible = false``
in its manifest, which refuses the Roll Back. The running versions are written back once every
front-end switched.

``refusals()`` says why a Roll Back cannot run (asked by the service before the stage is queued,
and by the stage again before it switches); ``run_rollback()`` is the stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.utils import timezone
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from agent.releases import release_name
from core.actors import Actor
from deployments.models import (
    ApplicationVersion,
    DeploymentPlan,
    GeneratedSql,
    OperationKind,
    PlanOperation,
    RunningVersion,
    Stage,
    StageKind,
    Step,
    StepKind,
    Transition,
)
from deployments.stages import engine
from deployments.stages.log import PlanStepLog, append_log, end_step
from deployments.state import machine, moves
from deployments.state.machine import PlanState, StageState, StepState
from deployments.steps import StepFailed
from deployments.steps.switch import enabled_frontends, revert_switch, switch_frontends
from deployments.steps.validate import dependencies_of
from environments.agents import call_each
from environments.models import Environment

P = PlanState
ROLLBACK = Actor.system("roll back")
REPORT_TIMEOUT_S = 5.0


class RollbackFailed(StepFailed):
    """The Roll Back could not run; every front-end still runs the plan's releases."""


@dataclasses.dataclass(frozen=True)
class Back:
    """One operation of the plan and what Roll Back puts back for it."""

    operation: PlanOperation
    previous: ApplicationVersion | None  # None: nothing ran before, the application goes away

    @property
    def name(self) -> str:
        return self.operation.application.name

    @property
    def release(self) -> str | None:
        if self.previous is None:
            return None
        return release_name(self.previous.version, self.previous.binary_sha256)

    def label(self) -> str:
        now = self.operation.version.version if self.operation.version else "nothing"
        back = self.previous.version if self.previous else "nothing"
        return f"{self.name} {now} → {back}"


def operations_to_roll_back(plan: DeploymentPlan, applications: Iterable[str] | None = None) -> list[PlanOperation]:
    """The plan's operations that switched and are not rolled back yet (only ``applications``)."""
    ops = plan.operations.select_related("application", "version", "previous_version").filter(rolled_back_at=None)
    if applications is not None:
        ops = ops.filter(application__name__in=list(applications))
    return list(ops.order_by("application__name"))


def refusals(plan: DeploymentPlan, operations: Sequence[PlanOperation], *, ask_frontends: bool = True) -> list[str]:
    """Why these operations of ``plan`` cannot be rolled back now ([]: they can)."""
    target = plan.target
    if not operations:
        return ["The plan has nothing left to roll back."]
    problems: list[str] = []
    unknown = [op.application.name for op in operations if not op.previous_known]
    if unknown:
        return [
            "The plan did not switch "
            + ", ".join(unknown)
            + " (or switched before the console recorded what ran before): there is nothing to go back to."
        ]
    running = {
        rv.application_id: rv
        for rv in RunningVersion.objects.filter(environment=target).select_related("application", "version", "plan")
    }
    # Plans that switched one of these applications after this one (an aborted plan changed nothing).
    later: dict[int, DeploymentPlan] = {}
    for row in (
        PlanOperation.objects.filter(
            plan__target=target,
            plan__finished_at__gt=plan.finished_at,
            previous_known=True,
            application_id__in=[op.application_id for op in operations],
        )
        .exclude(plan=plan)
        .select_related("plan")
        .order_by("plan__finished_at")
    ):
        later[row.application_id] = row.plan
    for op in operations:
        rv = running.get(op.application_id)
        mine = (
            rv is not None and rv.plan_id == plan.pk and rv.version_id == op.version_id
            if op.kind == OperationKind.DEPLOY
            else rv is None
        )
        newer = later.get(op.application_id)
        if newer is not None:
            problems.append(
                f"A later plan ({newer.key}, {newer.state_label.lower()}) changed {op.application.name} in {target.name}."
            )
        elif not mine:
            what = f"{rv.application.name} {rv.version.version}" if rv else f"no {op.application.name}"
            problems.append(f"{target.name} runs {what}, not what this plan deployed.")
    problems += _not_backward_compatible(plan, operations)
    problems += _dependencies_after(target, operations, running)
    for op in operations:
        prev = op.previous_version
        if prev is not None and not prev.binary_sha256:
            problems.append(f"{op.application.name} {prev.version} has no compiled binary to go back to.")
    if not problems and ask_frontends:
        problems += _missing_on_frontends(target, [Back(op, op.previous_version) for op in operations])
    return problems


def _not_backward_compatible(plan: DeploymentPlan, operations: Sequence[PlanOperation]) -> list[str]:
    names = {op.application_id for op in operations}
    problems = []
    for generated in GeneratedSql.objects.filter(plan=plan, application_id__in=names).select_related("version"):
        ran = {s.get("source") for s in generated.statements if s.get("kind") == "script"}
        for script in (generated.version.manifest or {}).get("scripts") or ():
            if script.get("name") in ran and script.get("backward_compatible") is False:
                problems.append(
                    f"{generated.version.application.name} {generated.version.version} ran {script['name']}, "
                    "marked not backward compatible in its manifest: the version before cannot run on the schema now."
                )
    return problems


def _satisfies(version: str, spec: str) -> bool:
    try:
        return Version(version) in SpecifierSet(spec or "")
    except (InvalidVersion, InvalidSpecifier):
        return False


def _dependencies_after(
    target: Environment, operations: Sequence[PlanOperation], running: dict[int, RunningVersion]
) -> list[str]:
    """Every application of the target still finds what it depends on once these go back."""
    after: dict[str, ApplicationVersion] = {rv.application.name: rv.version for rv in running.values()}
    for op in operations:
        if op.previous_version is None:
            after.pop(op.application.name, None)
        else:
            after[op.application.name] = op.previous_version
    problems = []
    for name, version in sorted(after.items()):
        for dep, spec in dependencies_of(version):
            have = after.get(dep)
            if have is None or not _satisfies(have.version, spec):
                now = f"{dep} {have.version}" if have else f"no {dep}"
                problems.append(f"{name} {version.version} needs {dep} {spec}".rstrip() + f"; it would find {now}.")
    return problems


def _missing_on_frontends(target: Environment, backs: Sequence[Back]) -> list[str]:
    """Ask each front-end's agent whether it holds the releases to go back to."""
    wanted = {b.name: b.release for b in backs if b.release is not None}
    frontends = enabled_frontends(target)
    if not frontends:
        return [f"{target.name} has no enabled front-end."]
    if not wanted:
        return []
    calls = call_each(
        frontends,
        "agent.holds",
        kwargs_for=lambda fe: {"releases_root": fe.releases_root, "links": wanted},
        timeout_s=REPORT_TIMEOUT_S,
    )
    problems = []
    for call in calls:
        if not call.ok:
            problems.append(f"Cannot tell which releases are on {call.problem()}.")
            continue
        for name, release in sorted(((call.answer or {}).get("missing") or {}).items()):
            problems.append(f"The release {release} of {name} is no longer on front-end {call.frontend.name}.")
    return problems


# --- the stage ------------------------------------------------------------------------------------


def state_before_rollback(plan: DeploymentPlan) -> str:
    """The finished state the plan had when its Roll Back was asked for."""
    row = Transition.objects.filter(plan=plan, to_state=P.ROLLING_BACK).order_by("-at", "-id").first()
    if row is not None and row.from_state in machine.FINISHED:
        return row.from_state
    return P.FINISHED_WITH_ERRORS


def fail_rollback(plan: DeploymentPlan, sentence: str, *, actor: Actor = ROLLBACK) -> None:
    """A Roll Back that stopped: the plan is finished as it was before, its request cleared."""
    with transaction.atomic():
        PlanOperation.objects.filter(plan=plan, rolled_back_at=None).update(rollback_requested_at=None)
        moves.move_plan(
            plan,
            expected={P.ROLLING_BACK},
            to=state_before_rollback(plan),
            actor=actor,
            reason=f"Roll Back failed: {sentence}",
            fields={"finished_at": plan.finished_at},
        )


def run_rollback(stage: Stage) -> None:
    plan = DeploymentPlan.objects.select_related("target").get(pk=stage.plan_id)
    target = plan.target
    ops = [op for op in operations_to_roll_back(plan) if op.rollback_requested_at is not None]

    checked_from = timezone.now()
    # The agents were asked which releases they hold when the Roll Back was asked for; each agent
    # checks again that every release is there before it moves a link, and the switch is all or nothing.
    problems = refusals(plan, ops, ask_frontends=False)
    Step.objects.create(
        stage=stage,
        kind=StepKind.CHECK,
        status=StepState.FAILED if problems else StepState.DONE,
        total=1,
        done=0 if problems else 1,
        started_at=checked_from,
        finished_at=timezone.now(),
        detail={"problems": problems} if problems else {},
    )
    if problems:
        raise RollbackFailed("Roll Back refused: " + " ".join(problems))

    backs = [Back(op, op.previous_version) for op in ops]
    frontends = enabled_frontends(target)
    log = PlanStepLog(plan)
    # An attempt of this Roll Back that died mid-switch may have left some front-ends switched: put
    # those back first (never the switch of an earlier Roll Back that succeeded).
    done_before = (
        plan.stages.filter(kind=StageKind.ROLLBACK, status=StageState.SUCCEEDED, pk__lt=stage.pk)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    attempts = plan.stages.filter(kind=StageKind.ROLLBACK, pk__lt=stage.pk, pk__gt=done_before or 0).exclude(
        status=StageState.CANCELLED
    )
    for earlier in attempts:
        revert_switch(frontends=frontends, switch_id=engine.switch_id_for(earlier), log=log)
    started = timezone.now()
    steps = {
        step.subject: step
        for step in Step.objects.bulk_create(
            Step(
                stage=stage,
                kind=StepKind.SWITCH,
                subject=fe.name,
                status=StepState.RUNNING,
                total=len(backs),
                started_at=started,
            )
            for fe in frontends
        )
    }
    append_log(
        plan,
        "info",
        f"Roll Back started (attempt {stage.attempt}): " + "; ".join(b.label() for b in backs) + ". No SQL runs.",
    )
    try:
        # The settings go back with the release (none: the link goes away), when this plan changed them.
        settings_back = {
            b.name: (b.operation.previous_settings_sha or None)
            for b in backs
            if b.operation.settings_sha or b.operation.previous_settings_sha
        }
        result = switch_frontends(
            frontends=frontends,
            settings_links=settings_back,
            releases={b.name: b.release for b in backs},
            log=log,
            switch_id=engine.switch_id_for(stage),
        )
    except StepFailed:
        for fe_step in steps.values():
            fe_step.refresh_from_db()
            if fe_step.status == StepState.RUNNING:
                end_step(fe_step, StepState.FAILED)
        raise
    by_name = {fe.frontend: fe for fe in result.frontends}
    switched_at = timezone.now()
    for name, fe_step in steps.items():
        fe = by_name.get(name)
        fe_step.status, fe_step.finished_at, fe_step.done = StepState.DONE, switched_at, fe_step.total
        if fe is not None:
            fe_step.detail = {"seconds": fe.seconds, "health_seconds": fe.health_seconds, "before": fe.before}
    Step.objects.bulk_update(list(steps.values()), ["status", "finished_at", "done", "detail"])

    now = timezone.now()
    with transaction.atomic():
        gone = [b.operation.application_id for b in backs if b.previous is None]
        back_to = {b.operation.application_id: b.previous for b in backs if b.previous is not None}
        RunningVersion.objects.filter(environment=target, application_id__in=gone).delete()
        rows = {
            rv.application_id: rv
            for rv in RunningVersion.objects.select_for_update().filter(environment=target, application_id__in=back_to)
        }
        for app_id, version in back_to.items():
            row = rows.get(app_id) or RunningVersion(environment=target, application_id=app_id)
            row.version, row.since, row.plan, row.is_modified = version, now, plan, False
            rows[app_id] = row
        RunningVersion.objects.bulk_create([r for r in rows.values() if r.pk is None])
        RunningVersion.objects.bulk_update(
            [r for r in rows.values() if r.pk is not None], ["version", "since", "plan", "is_modified"]
        )
        PlanOperation.objects.filter(pk__in=[b.operation.pk for b in backs]).update(rolled_back_at=now)
        left = PlanOperation.objects.filter(plan=plan, rolled_back_at=None, previous_known=True).exists()
        names = ", ".join(b.name for b in backs)
        if left:
            to, reason = state_before_rollback(plan), f"Rolled back {names}"
        else:
            to, reason = P.ROLLED_BACK, "Rolled back"
        moves.complete_stage(
            stage,
            plan,
            expected={P.ROLLING_BACK},
            to=to,
            actor=ROLLBACK,
            reason=reason,
            fields={"finished_at": plan.finished_at},
        )
    append_log(
        plan,
        "info",
        f"Roll Back finished in {result.seconds * 1000:.0f} ms: {target.name} runs "
        + ", ".join(f"{b.name} {b.previous.version}" if b.previous else f"no {b.name}" for b in backs)
        + " again.",
    )
