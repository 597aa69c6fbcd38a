"""Binds the stages to the steps: what Prepare and Continue call, in the domain's words.

The steps (deployments/steps/) are plain functions; this module gives them the plan's log writer,
records per-step details, and makes Continue safe to resume after a worker died.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import psycopg2
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
from deployments.stages import prepared_indexes, sql_estimates
from deployments.stages.log import PlanStepLog
from deployments.statements.scripts import squawk_findings
from deployments.steps import StepFailed, sql_estimate
from deployments.steps.compile import compile_version as compile_step
from deployments.steps.mobile import build_mobile_package
from deployments.steps.schema import connect, read_live_schemas
from deployments.steps.sql import DATA_MODEL, GeneratedScript, generate_sql
from deployments.steps.sql_execute import current_fingerprint, rehearse_sql
from deployments.steps.sql_window import PlannedScript
from deployments.steps.sql_window import execute_plan_sql as execute_window_sql
from deployments.steps.switch import releases_for, revert_switch, switch_frontends
from deployments.steps.upload import Binary, upload_binaries
from deployments.steps.validate import dependencies_of
from environments import databases
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
    rewritten: tuple[int, ...] = ()
    if generated.statements:
        report = rehearse_sql(environment=target, generated=generated, log=log)
        seconds, rewritten = report.seconds, report.rewritten
    fields = generated.model_fields()
    statements, totals = estimate_generated(target, generated, fields["statements"], rewritten=rewritten)
    fields["statements"] = statements
    fields["estimate"] = totals
    if statements:
        log.info(
            f"Estimated Continue SQL for {generated.application} on {target.name}: typical "
            f"{totals['typical_s']:.1f} s, pessimistic {totals['pessimistic_s']:.1f} s "
            f"({sql_estimate.basis_sentence(totals['throughputs'])})."
        )
    return Generated(
        statements=fields["statements"],
        warnings=fields["warnings"],
        fingerprint=fields["schema_fingerprint"],
        rehearsal_seconds=seconds,
        model_fields=fields,
    )


def move_out_of_window(
    plan: DeploymentPlan, application: Any, target: Environment, generated: Generated, log: PlanStepLog
) -> None:
    """The environment builds new indexes during Prepare: build them now, concurrently, and add
    foreign keys and checks NOT VALID in the window (validated after it). Totals follow."""
    schema = (generated.model_fields.get("schema_snapshot") or {}).get("schema", "")
    statements = prepared_indexes.defer_validation(generated.statements)
    statements = prepared_indexes.build_at_prepare(
        plan=plan, application=application, target=target, schema=schema, statements=statements, log=log
    )
    totals = dict(generated.model_fields.get("estimate") or {})
    totals["typical_s"] = round(sum((s.get("estimate") or {}).get("typical_s", 0) for s in statements), 3)
    totals["pessimistic_s"] = round(sum((s.get("estimate") or {}).get("pessimistic_s", 0) for s in statements), 3)
    generated.statements = statements
    generated.model_fields["statements"] = statements
    generated.model_fields["estimate"] = totals


def estimate_generated(
    target: Environment,
    generated: GeneratedScript,
    statements: list[dict[str, Any]],
    *,
    rewritten: tuple[int, ...] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each statement with its estimate and squawk's findings on generated DDL; and the totals.
    Table sizes come from the target's catalog (no scan); a rewrite the rehearsal did not see
    (a binary-coercible type change) counts as catalog work."""
    if not statements:
        return statements, {"typical_s": 0.0, "pessimistic_s": 0.0, "throughputs": {}, "sizes": {}}
    statements = [dict(s) for s in statements]
    for index, statement in enumerate(statements):
        if index in rewritten:
            continue
        statement["actions"] = [
            {**a, "cost": "catalog", "detail": {**(a.get("detail") or {}), "rewrite_not_seen": True}}
            if a.get("cost") == "rewrite"
            else a
            for a in statement.get("actions") or ()
        ]
    generated_ddl = [s for s in statements if s.get("source") == DATA_MODEL]
    if generated_ddl:
        # One squawk run over the generated DDL; each finding goes to the statement on its lines.
        starts, line = [], 1
        for statement in generated_ddl:
            starts.append(line)
            line += statement["sql"].count("\n") + 1
        findings = squawk_findings("".join(s["sql"] + ";\n" for s in generated_ddl))
        for number, statement in enumerate(generated_ddl):
            end = starts[number + 1] if number + 1 < len(starts) else 10**9
            statement["lint"] = [
                {"rule": f["rule"], "message": f["message"]} for f in findings if starts[number] <= f["line"] < end
            ]
    conn = connect(target.app_db_dsn())
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cursor:
            sizes = sql_estimate.read_table_sizes(cursor, [generated.schema])
    finally:
        conn.close()
    estimates, totals = sql_estimate.estimate_statements(
        statements,
        schema=generated.schema,
        sizes=sizes,
        throughputs=sql_estimates.throughputs_for(target),
        lock_timeout_s=target.sql_lock_timeout_ms / 1000,
    )
    for statement, estimate in zip(statements, estimates, strict=True):
        statement["estimate"] = estimate
    return statements, totals


def schema_fingerprint(target: Environment, version: ApplicationVersion) -> str:
    manifest = manifest_from_json(version.manifest)
    try:
        return current_fingerprint(environment=target, schema=manifest.data_model.schema, application=manifest.name)
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(f"Cannot read the schema of {manifest.name} in {target.name}: {exc}") from None


def read_target(
    target: Environment, versions: Sequence[tuple[str, ApplicationVersion]]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """What Continue asks the target before its SQL, on ONE connection: whether it is still the
    database it was saved as, then every application's live schema in one catalog read.

    Returns ``(sentence, {})`` when the connection now reaches another database, otherwise
    ``("", {name: the live schema's canonical description})``; StepFailed when it cannot be read."""
    if not versions:
        return databases.reaches_saved_database(target), {}
    manifests = [(name, manifest_from_json(version.manifest)) for name, version in versions]
    if not target.has_app_db:
        raise StepFailed(f"{target.name} has no application database to read the schemas from.")
    try:
        conn = connect(target.app_db_dsn())
    except psycopg2.Error:
        # Not reachable: the sentence Prepare's check gives (it tells a refused role from no server).
        raise StepFailed(
            databases.reaches_saved_database(target)
            or f"Cannot read the schemas in {target.name}: cannot connect to its application database."
        ) from None
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cursor:
            elsewhere = databases.reaches_saved_database_on(target, cursor)
            if elsewhere:
                return elsewhere, {}
            lives = read_live_schemas(cursor, [(m.data_model.schema, m.name) for _, m in manifests])
    except psycopg2.Error as exc:
        raise StepFailed(f"Cannot read the schemas in {target.name}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        conn.close()
    return "", {name: live.description() for (name, _), live in zip(manifests, lives, strict=True)}


def zone_frontends(plan: DeploymentPlan, frontends: Sequence[FrontEnd]) -> dict[str, set[str]]:
    """``{application: front-end names}`` for the plan's applications deployed to a zone (the
    zone's enabled front-ends); an application without a zone goes to every front-end."""
    enabled = {fe.name for fe in frontends if fe.enabled}
    only: dict[str, set[str]] = {}
    for op in plan.operations.filter(zone__isnull=False).select_related("application", "zone"):
        names = {fe.name for fe in op.zone.frontends.all()} & enabled
        if not names:
            raise StepFailed(
                f"The deployment zone {op.zone.name} of {op.application.name} has no enabled front-end in "
                f"{plan.target.name}."
            )
        only[op.application.name] = names
    return only


def upload(
    plan: DeploymentPlan,
    frontends: Sequence[FrontEnd],
    versions: Sequence[ApplicationVersion],
) -> dict[str, dict[str, Any]]:
    binaries = [Binary(v.application.name, v.version, v.binary_sha256) for v in versions]
    result = upload_binaries(
        frontends=frontends, binaries=binaries, log=PlanStepLog(plan), only=zone_frontends(plan, frontends)
    )
    details: dict[str, dict[str, Any]] = {}
    for name, uploads in result.by_frontend().items():
        details[name] = {
            "seconds": max((u.seconds or 0) for u in uploads),
            "bytes": sum(u.bytes for u in uploads if u.downloaded),
            "downloaded": sum(1 for u in uploads if u.downloaded),
        }
    return details


# --- Continue --------------------------------------------------------------------------------


def execute_plan_sql(
    plan: DeploymentPlan,
    target: Environment,
    deploys: Sequence[PlanOperation],
    generated: dict[int, GeneratedSql],
    log: PlanStepLog,
    *,
    resumed: bool,
    before_first_statement: Callable[[], None],
    before_commit: Callable[[], None] | None = None,
) -> int:
    """Execute all of the plan's SQL in one transaction on the target; return how many statements ran.

    A resumed Continue (its worker died after the point of no return) cannot know whether the
    target committed: it generates the SQL again against the live schema. Additive DDL for what
    exists is empty and applied scripts are in the history table, so nothing runs twice.
    Indexes built at Prepare are renamed instead of built; foreign keys and checks are added NOT
    VALID when the target builds indexes during Prepare, and validated after the switch.
    """
    from django.utils import timezone

    planned: list[PlannedScript] = []
    estimates: list[dict[str, Any] | None] = []
    ready = prepared_indexes.ready_by_application(plan)
    for op in deploys:
        row = generated.get(op.application_id)
        if row is None:
            continue
        if resumed:
            script = generate_sql(
                environment=target, version=op.version, log=log, previous_version=_running_version(target, op.version)
            )
            if not script.statements:
                log.info(f"{op.application.name}: the SQL of this plan is already applied.")
                continue
        else:
            script = GeneratedScript.from_model(row)
            if not script.statements:
                continue
        replacements = prepared_indexes.replacements(
            plan, op.application, script, target=target, ready_records=ready.get(op.application_id, [])
        )
        planned.append(PlannedScript(generated=script, replacements=replacements))
        estimates += [s.estimate for s in script.statements]
    now = timezone.now()
    window = target.window_at(now)
    # Inside an open window its end is the transaction's deadline; outside (an audited override)
    # only the statement timeout bounds it.
    deadline = window[1] if window is not None and window[0] <= now < window[1] else None
    report = execute_window_sql(
        dsn=target.app_db_dsn(),
        where=target.name,
        planned=planned,
        log=log,
        lock_timeout_ms=int(target.sql_lock_timeout_ms),
        statement_timeout_ms=int(target.sql_statement_timeout_ms),
        deadline=deadline,
        before_first_statement=before_first_statement,
        before_commit=before_commit,
    )
    sql_estimates.record_runs(target, report.runs, estimates)
    prepared_indexes.mark_used(plan)
    return report.statements


def validate_after_window(target: Environment, generated: dict[int, GeneratedSql], log: PlanStepLog) -> list[str]:
    """Constraints added NOT VALID in the window, validated now that the switch is done."""
    problems = []
    for row in generated.values():
        schema = (row.schema_snapshot or {}).get("schema", "")
        problems += prepared_indexes.validate_deferred(target=target, statements=row.statements, schema=schema, log=log)
    return problems


def switch_id_for(stage: Stage) -> str:
    return f"{stage.plan.key.hex[:16]}-{stage.pk}"


def switch(
    stage: Stage,
    frontends: Sequence[FrontEnd],
    deploys: Sequence[PlanOperation],
    undeploys: Sequence[PlanOperation],
    settings_links: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    plan = stage.plan
    log = PlanStepLog(plan)
    # A Continue that died mid-switch may have left some front-ends switched: put those back
    # first (each agent's journal knows what it replaced), then switch everything together.
    for earlier in plan.stages.filter(kind=StageKind.CONTINUE, pk__lt=stage.pk):
        revert_switch(frontends=frontends, switch_id=switch_id_for(earlier), log=log)
    releases: dict[str, str | None] = dict(releases_for(op.version for op in deploys))
    releases.update({op.application.name: None for op in undeploys})
    result = switch_frontends(
        frontends=frontends,
        releases=releases,
        log=log,
        switch_id=switch_id_for(stage),
        settings_links=settings_links,
        only=zone_frontends(plan, frontends),
    )
    return {
        fe.frontend: {"seconds": fe.seconds, "health_seconds": fe.health_seconds, "before": fe.before}
        for fe in result.frontends
    }


def put_back_after_error(stage: Stage, frontends: Sequence[FrontEnd], exc: BaseException) -> str:
    """The switch stopped on something other than a front-end's failure (a bug, the broker lost):
    put every front-end back from its journal, and say exactly where the environment stands."""
    log = PlanStepLog(stage.plan)
    what = f"{exc.__class__.__name__}: {(str(exc).strip().splitlines() or [''])[0]}".rstrip(": ")
    log.error(f"The switch stopped on an unexpected error ({what}); putting every front-end back.")
    try:
        revert_switch(frontends=frontends, switch_id=switch_id_for(stage), log=log)
    except StepFailed as failed:
        return (
            f"The switch stopped on an unexpected error ({what}), and putting the front-ends back failed: "
            f"{failed.message} The front-ends of {stage.plan.target.name} may run different versions: "
            "Continue again, or fix them by hand."
        )
    except Exception as second:
        return (
            f"The switch stopped on an unexpected error ({what}), and putting the front-ends back stopped too "
            f"({second.__class__.__name__}). The front-ends of {stage.plan.target.name} may run different "
            "versions: Continue again, or fix them by hand."
        )
    return (
        f"The switch stopped on an unexpected error ({what}). Every front-end was put back on the versions "
        "it ran before."
    )


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
