"""Prepare: validate, compile, generate and rehearse SQL, upload to every front-end. No impact."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from deployments import plans, transitions
from deployments.models import (
    GeneratedSql,
    OperationKind,
    PlanStatus,
    Stage,
    StageKind,
    StepKind,
    StepStatus,
)
from deployments.stages import engine, prepared_indexes
from deployments.stages.log import PlanStepLog, append_log, begin_step, end_step
from deployments.stages.runner import check_not_aborted
from deployments.stages.validity import take_snapshot
from deployments.steps import StepFailed

S = PlanStatus


def run_prepare(stage: Stage) -> None:
    plan = stage.plan
    target = plan.target
    append_log(plan, "info", f"Prepare started (attempt {stage.attempt}) for {target.name}.")

    step = begin_step(stage, StepKind.VALIDATE, total=1)
    validation = plans.validate_plan(plan)
    for warning in validation.warnings:
        append_log(plan, "warning", warning)
    if not validation.ok:
        end_step(step, StepStatus.FAILED)
        raise StepFailed("The plan is not valid: " + "; ".join(validation.errors))
    end_step(step)

    deploys = [
        op
        for op in plan.operations.select_related("application", "version").order_by("application__name")
        if op.kind == OperationKind.DEPLOY and op.version is not None
    ]
    # Producers first, so that a consumer's SQL can refer to what its producer creates.
    deploys = engine.order_by_dependencies(deploys)

    for op in deploys:
        check_not_aborted(plan)
        step = begin_step(stage, StepKind.COMPILE, op.application.name)
        log = PlanStepLog(plan, step)
        try:
            engine.compile_version(op.version, log)
        except StepFailed:
            end_step(step, StepStatus.FAILED)
            raise
        end_step(step)

    fingerprints: dict[str, str] = {}
    # Prepare Again: indexes an earlier Prepare built for this plan are dropped and built anew
    # against what the target holds now.
    prepared_indexes.drop_for_plan(plan.pk, why="Prepare again")
    GeneratedSql.objects.filter(plan=plan).delete()
    for op in deploys:
        check_not_aborted(plan)
        step = begin_step(stage, StepKind.GENERATE_SQL, op.application.name)
        log = PlanStepLog(plan, step)
        try:
            generated = engine.generate_and_rehearse(target, op.version, log)
            if target.build_indexes_during_prepare:
                engine.move_out_of_window(plan, op.application, target, generated, log)
        except StepFailed:
            end_step(step, StepStatus.FAILED)
            raise
        GeneratedSql.objects.create(
            plan=plan,
            application=op.application,
            version=op.version,
            rehearsal_seconds=generated.rehearsal_seconds,
            **generated.model_fields,
        )
        fingerprints[op.application.name] = generated.fingerprint
        end_step(step, statements=len(generated.statements), rehearsal_seconds=generated.rehearsal_seconds)

    check_not_aborted(plan)
    frontends = list(target.frontends.filter(enabled=True).order_by("name"))
    if deploys:
        if not frontends:
            raise StepFailed(f"{target.name} has no enabled front-end to upload to.")
        steps = {fe.name: begin_step(stage, StepKind.UPLOAD, fe.name, total=len(deploys)) for fe in frontends}
        try:
            results = engine.upload(plan, frontends, [op.version for op in deploys], steps=steps)
        except StepFailed:
            for step in steps.values():
                step.refresh_from_db()
                if step.status == StepStatus.RUNNING:
                    end_step(step, StepStatus.FAILED)
            raise
        for name, step in steps.items():
            end_step(step, **(results.get(name) or {}))

    snapshot = take_snapshot(plan, fingerprints=fingerprints)
    with transaction.atomic():
        if target.two_stage_deployments:
            transitions.transition(
                plan,
                expected=S.RUNNING,
                to=S.NEEDS_USER_INTERVENTION,
                info=transitions.INFO_PREPARED,
                actor="system",
                reason="Prepare finished: continue in the deployment window",
                fields={"prepared_at": timezone.now(), "prepared_snapshot": snapshot},
            )
        else:
            from deployments.models import DeploymentPlan

            DeploymentPlan.objects.filter(pk=plan.pk).update(prepared_at=timezone.now(), prepared_snapshot=snapshot)
            # Deploy Now: Continue follows at once, as its own task.
            plans.new_stage(plan, StageKind.CONTINUE, actor=stage.requested_by)
    append_log(
        plan,
        "info",
        "Deployment prepared: binaries are on every front-end, nothing running changed. Continue Deployment applies it."
        if target.two_stage_deployments
        else "Prepare finished; continuing.",
    )
