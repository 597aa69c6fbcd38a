"""Binds the stages to the steps: what Prepare and Continue call, in the domain's words.

The steps (deployments/steps/) are plain functions; this module gives them the plan's log writer,
records per-step details, and makes Continue safe to resume after a worker died.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings

from deployments.catalog.bundles import manifest_from_json
from deployments.models import (
    ApplicationVersion,
    DeploymentPlan,
    GeneratedSql,
    PlanOperation,
    RunningVersion,
    Stage,
    StageKind,
    Step,
)
from deployments.stages.log import PlanStepLog
from deployments.steps import StepFailed
from deployments.steps.compile import compile_version as compile_step
from deployments.steps.mobile import build_mobile_package
from deployments.steps.sql import GeneratedScript, generate_sql
from deployments.steps.sql_execute import current_fingerprint, rehearse_sql
from deployments.steps.sql_execute import execute_sql as execute_step
from deployments.steps.switch import releases_for, revert_switch, switch_frontends
from deployments.steps.upload import Binary, upload_binaries
from deployments.steps.validate import dependencies_of
from environments.agents import AgentCall, send, wait
from environments.models import Environment, FrontEnd


def order_by_dependencies(operations: Sequence[PlanOperation]) -> list[PlanOperation]:
    """Producers before consumers (stable by name otherwise); a cycle keeps the given order."""
    by_name = {op.application.name: op for op in operations}
    ordered: list[PlanOperation] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        op = by_name.get(name)
        if op is None or op in ordered or name in visiting:
            return
        visiting.add(name)
        for dep in sorted(name for name, _spec in dependencies_of(op.version)):
            visit(dep)
        visiting.discard(name)
        ordered.append(op)

    for name in sorted(by_name):
        visit(name)
    return ordered


# --- Prepare ---------------------------------------------------------------------------------


def compile_version(version: ApplicationVersion, log: PlanStepLog) -> None:
    result = compile_step(version=version, log=log)
    if log.step is not None:
        Step.objects.filter(pk=log.step.pk).update(
            detail={"seconds": result.seconds, "modules": result.modules, "cached": result.cached}
        )


@dataclasses.dataclass
class Generated:
    statements: list[dict[str, Any]]
    warnings: list[str]
    fingerprint: str
    rehearsal_seconds: float
    model_fields: dict[str, Any]


def _running_version(target: Environment, version: ApplicationVersion) -> ApplicationVersion | None:
    running = RunningVersion.objects.filter(environment=target, application_id=version.application_id).first()
    return running.version if running else None


def generate_and_rehearse(target: Environment, version: ApplicationVersion, log: PlanStepLog) -> Generated:
    generated = generate_sql(
        environment=target, version=version, log=log, previous_version=_running_version(target, version)
    )
    seconds = 0.0
    if generated.statements:
        report = rehearse_sql(environment=target, generated=generated, log=log)
        seconds = report.seconds
    fields = generated.model_fields()
    return Generated(
        statements=fields["statements"],
        warnings=fields["warnings"],
        fingerprint=fields["schema_fingerprint"],
        rehearsal_seconds=seconds,
        model_fields=fields,
    )


def schema_fingerprint(target: Environment, version: ApplicationVersion) -> str:
    manifest = manifest_from_json(version.manifest)
    try:
        return current_fingerprint(environment=target, schema=manifest.data_model.schema, application=manifest.name)
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(f"Cannot read the schema of {manifest.name} in {target.name}: {exc}") from None


def upload(
    plan: DeploymentPlan,
    frontends: Sequence[FrontEnd],
    versions: Sequence[ApplicationVersion],
) -> dict[str, dict[str, Any]]:
    binaries = [Binary(v.application.name, v.version, v.binary_sha256) for v in versions]
    result = upload_binaries(frontends=frontends, binaries=binaries, log=PlanStepLog(plan))
    details: dict[str, dict[str, Any]] = {}
    for name, uploads in result.by_frontend().items():
        details[name] = {
            "seconds": max((u.seconds or 0) for u in uploads),
            "bytes": sum(u.bytes for u in uploads if u.downloaded),
            "downloaded": sum(1 for u in uploads if u.downloaded),
        }
    return details


# --- Continue --------------------------------------------------------------------------------


class _OffsetLog:
    """Progress of one application's statements, shown as progress over the whole plan's SQL."""

    def __init__(self, log: PlanStepLog, offset: int, total: int) -> None:
        self.log, self.offset, self.total = log, offset, total

    def info(self, message: str) -> None:
        self.log.info(message)

    def warning(self, message: str) -> None:
        self.log.warning(message)

    def error(self, message: str) -> None:
        self.log.error(message)

    def progress(self, done: int, total: int) -> None:
        self.log.progress(self.offset + done, max(self.total, self.offset + total))


def execute_sql(
    target: Environment,
    version: ApplicationVersion,
    row: GeneratedSql,
    log: PlanStepLog,
    *,
    resumed: bool,
    before_first_statement: Callable[[], None],
    offset: int = 0,
    total: int = 0,
) -> int:
    """Execute one application's SQL in one transaction; return how many statements ran.

    A resumed Continue (its worker died after the point of no return) cannot know whether the
    target committed: it generates the SQL again against the live schema. Additive DDL for what
    exists is empty and applied scripts are in the history table, so nothing runs twice.
    """
    if resumed:
        generated = generate_sql(
            environment=target, version=version, log=log, previous_version=_running_version(target, version)
        )
        if not generated.statements:
            log.info(f"{version.application.name}: the SQL of this plan is already applied.")
            return 0
    else:
        generated = GeneratedScript.from_model(row)
        if not generated.statements:
            return 0
    report = execute_step(
        environment=target,
        generated=generated,
        log=_OffsetLog(log, offset, total),
        before_first_statement=before_first_statement,
    )
    return report.statements


def switch_id_for(stage: Stage) -> str:
    return f"{stage.plan.key.hex[:16]}-{stage.pk}"


def switch(
    stage: Stage,
    frontends: Sequence[FrontEnd],
    deploys: Sequence[PlanOperation],
    undeploys: Sequence[PlanOperation],
) -> dict[str, dict[str, Any]]:
    plan = stage.plan
    log = PlanStepLog(plan)
    # A Continue that died mid-switch may have left some front-ends switched: put those back
    # first (each agent's journal knows what it replaced), then switch everything together.
    for earlier in plan.stages.filter(kind=StageKind.CONTINUE, pk__lt=stage.pk):
        revert_switch(frontends=frontends, switch_id=switch_id_for(earlier), log=log)
    releases: dict[str, str | None] = dict(releases_for(op.version for op in deploys))
    releases.update({op.application.name: None for op in undeploys})
    result = switch_frontends(frontends=frontends, releases=releases, log=log, switch_id=switch_id_for(stage))
    return {
        fe.frontend: {"seconds": fe.seconds, "health_seconds": fe.health_seconds, "before": fe.before}
        for fe in result.frontends
    }


def clean_up_releases(plan: DeploymentPlan, frontends: Sequence[FrontEnd]) -> None:
    """Keep the last releases on each front-end (never the current or the previous one). Best effort:
    a front-end that does not answer keeps its old releases, and the deployment is not affected."""
    log = PlanStepLog(plan)
    keep = getattr(settings, "RELEASES_KEPT", 5)
    calls = [
        send(AgentCall(fe, "agent.cleanup", {"releases_root": fe.releases_root, "keep": keep}), expires_in_s=60)
        for fe in frontends
    ]
    wait(calls, timeout_s=30)
    for call in calls:
        if not call.ok:
            log.warning(f"Clean-up of old releases did not finish on {call.problem()}.")
            continue
        removed = sum(len(names) for names in (call.answer or {}).get("removed", {}).values())
        if removed:
            log.info(f"Front-end {call.frontend.name}: removed {removed} old release(s), keeping the last {keep}.")


def mobile_package(plan: DeploymentPlan, target: Environment, version: ApplicationVersion, log: PlanStepLog) -> bool:
    return build_mobile_package(environment=target, version=version, log=log, plan=plan) is not None
