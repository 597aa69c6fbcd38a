"""What Prepare saw of the target, and whether it still holds at Continue."""

from __future__ import annotations

from typing import Any

from deployments.models import DeploymentPlan, GeneratedSql, OperationKind, RunningVersion
from deployments.stages import engine
from deployments.state import moves
from deployments.steps import StepFailed
from deployments.steps.schema import describe_drift, fingerprint_of
from environments import databases


class PlanNoLongerValid(StepFailed):
    """The target changed after Prepare: Continue refuses; the plan can be prepared again or aborted."""

    suspend = True


def _running(plan: DeploymentPlan) -> dict[str, str]:
    return {
        name: str(key)
        for name, key in RunningVersion.objects.filter(environment=plan.target).values_list(
            "application__name", "version__key"
        )
    }


def _frontends(plan: DeploymentPlan) -> list[str]:
    return sorted(plan.target.frontends.filter(enabled=True).values_list("name", flat=True))


def _fingerprints(plan: DeploymentPlan) -> dict[str, str]:
    out = {}
    for op in plan.operations.select_related("application", "version"):
        if op.kind == OperationKind.DEPLOY and op.version is not None:
            out[op.application.name] = engine.schema_fingerprint(plan.target, op.version)
    return out


def take_snapshot(plan: DeploymentPlan, *, fingerprints: dict[str, str]) -> dict[str, Any]:
    return {"running": _running(plan), "frontends": _frontends(plan), "fingerprints": fingerprints}


def check_still_valid(plan: DeploymentPlan) -> list[str]:
    """The differences between the target now and the target at Prepare (empty: still valid)."""
    snapshot = plan.prepared_snapshot or {}
    if not snapshot:
        return ["the plan has not been prepared"]
    problems: list[str] = []
    elsewhere = databases.reaches_saved_database(plan.target)
    if elsewhere:
        return [elsewhere]
    before, now = snapshot.get("running", {}), _running(plan)
    names = set(before) | set(now)
    if plan.target.concurrent_plans > 1:
        # Plans side by side change other applications of the target meanwhile; they share no
        # application and no dependency with this one (moves.blocking_holder), so only those count.
        names &= moves.footprint(plan)
    for name in sorted(names):
        if before.get(name) != now.get(name):
            problems.append(f"the running version of {name} changed since Prepare")
    was, is_ = snapshot.get("frontends", []), _frontends(plan)
    if was != is_:
        added, removed = sorted(set(is_) - set(was)), sorted(set(was) - set(is_))
        parts = ([f"added {', '.join(added)}"] if added else []) + (
            [f"removed {', '.join(removed)}"] if removed else []
        )
        problems.append(f"the front-ends changed since Prepare ({'; '.join(parts)})")
    recorded = snapshot.get("fingerprints", {})
    try:
        live = _descriptions(plan)
    except StepFailed as exc:
        return [*problems, exc.message]
    prepared = {g.application.name: g for g in GeneratedSql.objects.filter(plan=plan).select_related("application")}
    for name, fingerprint in recorded.items():
        description = live.get(name)
        if description is not None and fingerprint_of(description) == fingerprint:
            continue
        # Name what differs (tables, columns, indexes), as the person at 02:00 needs it.
        row = prepared.get(name)
        before = ((row.schema_snapshot or {}).get("description") or {}) if row is not None else {}
        differences = describe_drift(before, description or {}) if before and description is not None else []
        problems.append(
            f"the database schema of {name} changed since Prepare"
            + (": " + "; ".join(differences) if differences else "")
        )
    return problems


def _descriptions(plan: DeploymentPlan) -> dict[str, dict[str, Any]]:
    out = {}
    for op in plan.operations.select_related("application", "version"):
        if op.kind == OperationKind.DEPLOY and op.version is not None:
            out[op.application.name] = engine.schema_description(plan.target, op.version)
    return out
