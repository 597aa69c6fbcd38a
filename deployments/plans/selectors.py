"""Read-side queries for the pages and the API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from deployments.models import Application, DeploymentPlan, PlanOperation, RunningVersion
from deployments.state import machine
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
            target_id__in=env_ids, state__in=machine.PREPARED
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
    """The plan holding each environment (running, prepared, suspended, aborting), if any."""
    return {
        plan.target_id: plan
        for plan in DeploymentPlan.objects.filter(target__in=environments, state__in=machine.HOLDING).select_related(
            "started_by"
        )
    }


def plans_for(user_env_ids: list[int]) -> QuerySet[DeploymentPlan]:
    return (
        DeploymentPlan.objects.filter(target_id__in=user_env_ids)
        .select_related("source", "target", "created_by", "started_by")
        .prefetch_related(
            Prefetch("operations", queryset=PlanOperation.objects.select_related("application", "version"))
        )
        .order_by("-created_at", "-id")
    )


@dataclasses.dataclass(frozen=True)
class PlanFilters:
    """The plans list's filters, read from the query string; unknown or malformed values are ignored."""

    target: str = ""
    status: str = ""
    application: str = ""
    who: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    q: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> PlanFilters:
        return cls(
            target=_uuid_or_blank(query.get("target", "")),
            status=query.get("status", "") if query.get("status", "") in machine.FILTERS else "",
            application=_uuid_or_blank(query.get("application", "")),
            who=query.get("who", "").strip()[:150],
            since=_date_or_none(query.get("since", "")),
            until=_date_or_none(query.get("until", "")),
            q=query.get("q", "").strip()[:200],
        )

    def query_string(self) -> str:
        """The filters as a query string, to carry them over from page to page."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if v}
        return urlencode({k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()})

    @property
    def active(self) -> bool:
        return any(dataclasses.asdict(self).values())


def _uuid_or_blank(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return ""


def _date_or_none(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def filter_plans(qs: QuerySet[DeploymentPlan], filters: PlanFilters) -> QuerySet[DeploymentPlan]:
    if filters.target:
        qs = qs.filter(target__key=filters.target)
    if filters.status:
        qs = qs.filter(state__in=machine.FILTERS[filters.status][1])
    if filters.application:
        # EXISTS rather than a join: one row per plan, and the planner stops at the first operation.
        qs = qs.filter(Exists(PlanOperation.objects.filter(plan=OuterRef("pk"), application__key=filters.application)))
    if filters.who:
        user_ids = list(get_user_model().objects.filter(username__iexact=filters.who).values_list("pk", flat=True))
        qs = qs.filter(
            Q(created_by__in=user_ids)
            | Q(started_by__in=user_ids)
            | Q(continued_by__in=user_ids)
            | Q(aborted_by__in=user_ids)
        )
    # Whole days in the console's time zone, as ranges on created_at so that its index serves them.
    if filters.since:
        qs = qs.filter(created_at__gte=timezone.make_aware(dt.datetime.combine(filters.since, dt.time.min)))
    if filters.until:
        qs = qs.filter(
            created_at__lt=timezone.make_aware(dt.datetime.combine(filters.until + dt.timedelta(days=1), dt.time.min))
        )
    if filters.q:
        try:
            qs = qs.filter(key=uuid.UUID(filters.q))
        except ValueError:
            qs = qs.filter(Q(notes__icontains=filters.q) | Q(key__startswith=filters.q.lower()))
    return qs
