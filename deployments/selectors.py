"""Read-side queries for the pages and the API."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from deployments import transitions
from deployments.models import Application, DeploymentPlan, PlanStatus, RunningVersion
from environments.models import Environment


def overview(environments: list[Environment]) -> list[dict[str, Any]]:
    """LifeTime's Applications screen: one row per application, one cell per environment."""
    env_ids = [env.pk for env in environments]
    running = RunningVersion.objects.filter(environment_id__in=env_ids).select_related("version")
    by_app: dict[int, dict[int, RunningVersion]] = {}
    for rv in running:
        by_app.setdefault(rv.application_id, {})[rv.environment_id] = rv
    prepared = {
        (op_app, plan_target): plan_key
        for op_app, plan_target, plan_key in DeploymentPlan.objects.filter(
            target_id__in=env_ids, status=PlanStatus.NEEDS_USER_INTERVENTION, info=transitions.INFO_PREPARED
        ).values_list("operations__application_id", "target_id", "key")
    }
    rows = []
    for app in Application.objects.filter(pk__in=by_app.keys()).order_by("name"):
        cells = []
        for env in environments:
            rv = by_app.get(app.pk, {}).get(env.pk)
            cells.append({"environment": env, "running": rv, "prepared_plan": prepared.get((app.pk, env.pk))})
        rows.append({"application": app, "cells": cells})
    return rows


def holders(environments: list[Environment]) -> dict[int, DeploymentPlan]:
    """The plan holding each environment (running, prepared, aborting), if any."""
    return {
        plan.target_id: plan
        for plan in DeploymentPlan.objects.filter(
            target__in=environments, status__in=transitions.HOLDING
        ).select_related("started_by")
    }


def plans_for(user_env_ids: list[int]) -> QuerySet[DeploymentPlan]:
    return (
        DeploymentPlan.objects.filter(target_id__in=user_env_ids)
        .select_related("source", "target", "created_by", "started_by")
        .order_by("-created_at", "-id")
    )


def status_tag(plan: DeploymentPlan) -> tuple[str, str]:
    """(label, css class) as LifeTime shows a plan's status."""
    if plan.status == PlanStatus.NEEDS_USER_INTERVENTION:
        if plan.info == transitions.INFO_PREPARED:
            return "Prepared", "prepared"
        return "Needs intervention", "warnings"
    return {
        PlanStatus.SAVED: ("Saved", "saved"),
        PlanStatus.RUNNING: ("Running", "running"),
        PlanStatus.ABORTING: ("Aborting", "running"),
        PlanStatus.ABORTED: ("Aborted", "aborted"),
        PlanStatus.FINISHED_SUCCESSFUL: ("Finished successful", "successful"),
        PlanStatus.FINISHED_WITH_WARNINGS: ("Finished with warnings", "warnings"),
        PlanStatus.FINISHED_WITH_ERRORS: ("Finished with errors", "errors"),
    }.get(plan.status, (plan.status, ""))
