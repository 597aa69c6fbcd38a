"""Prepare: validate, compile, generate and rehearse SQL, upload to every front-end. No impact."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from deployments.models import (
    GeneratedSql,
    OperationKind,
    Stage,
    StageKind,
    StepKind,
)
from deployments.stages import engine, prepared_indexes, queue
from deployments.stages.log import PlanStepLog, append_log, begin_step, end_step
from deployments.stages.stop import check_not_aborted
from deployments.stages.validity import take_snapshot
from deployments.state import moves
from deployments.state.machine import PlanState, StepState
from deployments.steps import StepFailed
from deployments.steps.validate import validate_plan
from environments import databases

P = PlanState
PREPARE = Actor.system("prepare")


def run_prepare(stage: Stage) -> None:
    plan = stage.plan
    target = plan.target
    append_log(plan, "info", f"Prepare started (attempt {stage.attempt}) for {target.name}.")

    step = begin_step(stage, StepKind.VALIDATE, total=1)
    elsewhere = databases.reaches_saved_database(target)
    if elsewhere:
        end_step(step, StepState.FAILED)
        raise StepFailed(elsewhere[0].upper() + elsewhere[1:] + ".")
    validation = validate_plan(plan)
    for warning in validation.warnings:
        append_log(plan, "warning", warning)
    if not validation.ok:
        end_step(step, StepState.FAILED)
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
            end_step(step, StepState.FAILED)
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
            end_step(step, StepState.FAILED)
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
            results = engine.upload(plan, frontends, [op.version for op in deploys])
        except StepFailed:
            for step in steps.values():
                step.refresh_from_db()
                if step.status == StepState.RUNNING:
                    end_step(step, StepState.FAILED)
            raise
        for name, step in steps.items():
            end_step(step, **(results.get(name) or {}))

    snapshot = take_snapshot(plan, fingerprints=fingerprints)
    prepared = {"prepared_at": timezone.now(), "prepared_snapshot": snapshot}
    with transaction.atomic():
        if target.two_stage_deployments:
            moves.complete_stage(
                stage,
                plan,
                expected={P.PREPARING},
                to=P.PREPARED,
                actor=PREPARE,
                reason="Prepare finished: continue in the deployment window",
                fields=prepared,
            )
        else:
            # Deploy Now: Continue follows at once, as its own task.
            moves.complete_stage(
                stage,
                plan,
                expected={P.PREPARING},
                to=P.CONTINUING,
                actor=PREPARE,
                reason="Prepare finished: Deploy Now continues",
                fields={**prepared, "continued_at": timezone.now(), "continued_by": stage.requested_by},
            )
            queue.new_stage(plan, StageKind.CONTINUE, requested_by=stage.requested_by)
    append_log(
        plan,
        "info",
        "Deployment prepared: binaries are on every front-end, nothing running changed. Continue Deployment applies it."
        if target.two_stage_deployments
        else "Prepare finished; continuing.",
    )
