"""What Prepare saw of the target, and whether it still holds at Continue."""

from __future__ import annotations

from typing import Any

from deployments.models import DeploymentPlan, GeneratedSql, OperationKind, RunningVersion
from deployments.stages import engine
from deployments.state import moves
from deployments.steps import StepFailed
from deployments.steps.schema import describe_drift, fingerprint_of


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
    """The differences between the target now and the target at Prepare (empty: still valid).

    The target's application database is asked once: who it is and every application's schema,
    on one connection in one catalog read, whatever the number of applications (this runs between
    the click on Continue and its first SQL statement)."""
    snapshot = plan.prepared_snapshot or {}
    if not snapshot:
        return ["the plan has not been prepared"]
    deploys = [
        (op.application.name, op.version)
        for op in plan.operations.select_related("application", "version")
        if op.kind == OperationKind.DEPLOY and op.version is not None
    ]
    live: dict[str, dict[str, Any]] | None
    try:
        elsewhere, live = engine.read_target(plan.target, deploys)
    except StepFailed as exc:
        elsewhere, live, unreadable = "", None, exc.message
    if elsewhere:
        return [elsewhere]
    problems: list[str] = []
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
    if live is None:
        return [*problems, unreadable]
    recorded = snapshot.get("fingerprints", {})
    drifted = [
        name
        for name, fingerprint in recorded.items()
        if live.get(name) is None or fingerprint_of(live[name]) != fingerprint
    ]
    if not drifted:
        return problems
    prepared = {
        g.application.name: g
        for g in GeneratedSql.objects.filter(plan=plan, application__name__in=drifted).select_related("application")
    }
    for name in drifted:
        description = live.get(name)
        # Name what differs (tables, columns, indexes), as the person at 02:00 needs it.
        row = prepared.get(name)
        before = ((row.schema_snapshot or {}).get("description") or {}) if row is not None else {}
        differences = describe_drift(before, description or {}) if before and description is not None else []
        problems.append(
            f"the database schema of {name} changed since Prepare"
            + (": " + "; ".join(differences) if differences else "")
        )
    return problems
