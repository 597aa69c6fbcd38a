"""Continue: check the plan still holds, execute SQL, switch every front-end, record the running
versions, build mobile packages. This is the part that runs in the deployment window."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from deployments.catalog import settings as app_settings
from deployments.models import (
    ApplicationKind,
    DeploymentPlan,
    GeneratedSql,
    OperationKind,
    PlanOperation,
    RunningVersion,
    Stage,
    StepKind,
)
from deployments.stages import engine
from deployments.stages.log import PlanStepLog, append_log, begin_step, end_step
from deployments.stages.stop import StageAborted, check_not_aborted
from deployments.stages.validity import PlanNoLongerValid, check_still_valid
from deployments.state import machine, moves
from deployments.state.machine import PlanState, StepState
from deployments.steps import StepFailed
from deployments.steps.settings import deliver_settings

P = PlanState
CONTINUE = Actor.system("continue")


def pass_point_of_no_return(plan: DeploymentPlan) -> None:
    """From here on the plan cannot be aborted: the move from continuing to applying, a
    compare-and-set against a concurrent Abort (which moves it to aborting)."""
    plan.refresh_from_db(fields=["state"])
    if plan.past_point_of_no_return:
        return  # a resumed Continue passed it before
    try:
        moves.move_plan(
            plan,
            expected={P.CONTINUING},
            to=P.APPLYING,
            actor=CONTINUE,
            reason="Point of no return: Continue changes the target",
            fields={"point_of_no_return_at": timezone.now()},
        )
    except moves.TransitionLost as exc:
        if exc.current == P.ABORTING:
            raise StageAborted() from None
        raise StepFailed(f"The plan is {machine.label(exc.current or '').lower()}: Continue cannot go on.") from None
    append_log(plan, "info", "Point of no return: changing the target now; Abort is no longer possible.")


def _fail_running(steps) -> None:
    for step in steps:
        step.refresh_from_db()
        if step.status == StepState.RUNNING:
            end_step(step, StepState.FAILED)


def record_previous_versions(target, operations, settings_links: dict[str, str]) -> None:
    """Write on each operation the version that runs in ``target`` before it switches (once)."""
    running = {
        rv.application_id: rv.version_id
        for rv in RunningVersion.objects.select_for_update().filter(
            environment=target, application_id__in=[op.application_id for op in operations]
        )
    }
    plans_before = {
        rv.application_id: rv.plan_id
        for rv in RunningVersion.objects.filter(
            environment=target, application_id__in=[op.application_id for op in operations]
        )
    }
    # The settings that ran before: those the operation that put the running version in place left.
    settings_before = {}
    for earlier in PlanOperation.objects.filter(
        plan_id__in=[p for p in plans_before.values() if p], application_id__in=plans_before
    ):
        if plans_before.get(earlier.application_id) == earlier.plan_id:
            rolled_back = earlier.rolled_back_at is not None
            settings_before[earlier.application_id] = (
                earlier.previous_settings_sha if rolled_back else earlier.settings_sha
            )
    for op in operations:
        if op.previous_known:
            continue
        op.previous_version_id = running.get(op.application_id)
        op.previous_settings_sha = settings_before.get(op.application_id, "")
        op.settings_sha = settings_links.get(op.application.name, "")
        op.previous_known = True
        op.save(update_fields=["previous_version", "previous_known", "previous_settings_sha", "settings_sha"])


def run_continue(stage: Stage) -> None:
    plan = DeploymentPlan.objects.select_related("target").get(pk=stage.plan_id)
    target = plan.target
    resumed = plan.past_point_of_no_return
    append_log(
        plan,
        "info",
        f"Continue started (attempt {stage.attempt})"
        + (": resuming after the point of no return." if resumed else "."),
    )
    operations = list(plan.operations.select_related("application", "version"))
    deploys = engine.order_by_dependencies(
        [op for op in operations if op.kind == OperationKind.DEPLOY and op.version is not None]
    )

    if not resumed:
        step = begin_step(stage, StepKind.CHECK, total=1)
        problems = check_still_valid(plan)
        if problems:
            end_step(step, StepState.FAILED, problems=problems)
            raise PlanNoLongerValid("The target changed since Prepare: " + "; ".join(problems) + ". Prepare again.")
        end_step(step)
        check_not_aborted(plan)

    # --- settings, beside the new releases (nothing running reads them before the switch) ----
    frontends = list(target.frontends.filter(enabled=True).order_by("name"))
    settings_links: dict[str, str] = {}
    if any(app_settings.declared(op.version) for op in deploys):
        step = begin_step(stage, StepKind.SETTINGS, total=len(frontends))
        try:
            settings_links = deliver_settings(
                plan=plan, frontends=frontends, versions=[op.version for op in deploys], log=PlanStepLog(plan, step)
            )
        except StepFailed:
            end_step(step, StepState.FAILED)
            raise
        end_step(step, applications=sorted(settings_links))

    # --- SQL ---------------------------------------------------------------------------------
    generated = {g.application_id: g for g in GeneratedSql.objects.filter(plan=plan)}
    total = sum(len(g.statements) for g in generated.values())
    step = begin_step(stage, StepKind.EXECUTE_SQL, total=total)
    log = PlanStepLog(plan, step)
    try:
        # One transaction for the whole plan, the applications in dependency order. The point of
        # no return is marked inside it, right before its first statement: an Abort that wins the
        # race rolls the SQL back with it.
        executed = engine.execute_plan_sql(
            plan,
            target,
            deploys,
            generated,
            log,
            resumed=resumed,
            before_first_statement=lambda: pass_point_of_no_return(plan),
            # The target is another database: the console's fence is checked right before its
            # COMMIT, and the target's script ledger (primary key application, script) refuses a
            # script a second time even if two attempts raced past this check.
            before_commit=moves.check_attempt,
        )
    except StepFailed:
        end_step(step, StepState.FAILED)
        raise
    end_step(step, statements=executed)
    # No SQL at all: switching is the point of no return.
    pass_point_of_no_return(plan)

    # --- switch ------------------------------------------------------------------------------
    undeploys = [op for op in operations if op.kind == OperationKind.UNDEPLOY]
    if deploys or undeploys:
        steps = {fe.name: begin_step(stage, StepKind.SWITCH, fe.name, total=len(operations)) for fe in frontends}
        moves.check_attempt()
        try:
            results = engine.switch(stage, frontends, deploys, undeploys, settings_links=settings_links)
        except StepFailed:
            _fail_running(steps.values())
            raise
        except moves.StaleAttempt:
            raise
        except Exception as exc:
            # Whatever stopped it, the switch stays all or nothing: put every front-end back.
            _fail_running(steps.values())
            raise StepFailed(engine.put_back_after_error(stage, frontends, exc)) from exc
        for name, fe_step in steps.items():
            end_step(fe_step, **(results.get(name) or {}))

    # --- running versions --------------------------------------------------------------------
    now = timezone.now()
    with transaction.atomic():
        moves.check_attempt()
        # What each operation replaced, for Roll Back; in the same transaction as the running
        # versions, so that a resumed Continue never records its own versions as the previous ones.
        record_previous_versions(target, [*deploys, *undeploys], settings_links)
        for op in deploys:
            RunningVersion.objects.update_or_create(
                environment=target,
                application=op.application,
                defaults={"version": op.version, "since": now, "plan": plan, "is_modified": False},
            )
        for op in undeploys:
            RunningVersion.objects.filter(environment=target, application=op.application).delete()
    append_log(
        plan,
        "info",
        "Running versions in "
        + target.name
        + ": "
        + ", ".join(f"{op.application.name} {op.version.version}" for op in deploys)
        if deploys
        else "No application deployed.",
    )

    if deploys or undeploys:
        engine.clean_up_releases(plan, frontends)

    # Foreign keys and checks added NOT VALID in the window: validated now, reads and writes going on.
    engine.validate_after_window(target, generated, PlanStepLog(plan))

    # --- mobile packages ---------------------------------------------------------------------
    mobile_failed = []
    for op in deploys:
        if op.application.kind != ApplicationKind.MOBILE:
            continue
        step = begin_step(stage, StepKind.MOBILE_PACKAGE, op.application.name, total=1)
        log = PlanStepLog(plan, step)
        try:
            built = engine.mobile_package(plan, target, op.version, log)
        except StepFailed as exc:
            append_log(plan, "error", exc.message)
            end_step(step, StepState.FAILED)
            mobile_failed.append(op.application.name)
            continue
        end_step(step, StepState.DONE if built else StepState.SKIPPED)

    warnings = plan.log_lines.filter(level="warning").exists() or any(g.warnings for g in generated.values())
    if mobile_failed:
        to, reason = (
            P.FINISHED_WITH_ERRORS,
            "The mobile package of " + ", ".join(mobile_failed) + " failed; the web release is switched.",
        )
    elif warnings:
        to, reason = P.FINISHED_WITH_WARNINGS, "Deployed, with warnings"
    else:
        to, reason = P.FINISHED_SUCCESSFUL, "Deployed"
    moves.complete_stage(stage, plan, expected={P.APPLYING}, to=to, actor=CONTINUE, reason=reason)
    append_log(plan, "info" if to != P.FINISHED_WITH_ERRORS else "error", f"Deployment finished: {reason.lower()}.")
