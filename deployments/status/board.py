"""The environment board for ops: per environment, what runs, which plan holds it (prepared and
waiting, or running and at which step), the last deployment, and the state of every front-end agent.

A fixed number of queries for any number of environments, front-ends and plans.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import OuterRef, Prefetch, Q, Subquery, prefetch_related_objects
from django.utils import timezone

from core.durations import seconds_label
from deployments.models import DeploymentPlan, GeneratedSql, RunningVersion, Stage, Step
from deployments.plans import approvals
from deployments.state import machine
from deployments.state.machine import StageState, StepState
from environments.models import Environment, FrontEnd

# An agent is asked for its report every 30 s (beat): three missed answers make it late, ten silent.
AGENT_LATE = dt.timedelta(seconds=90)
AGENT_SILENT = dt.timedelta(minutes=5)
# The relative times on the board ("answered 40 s ago") are refreshed at least this often.
BOARD_CLOCK_SECONDS = 30


@dataclasses.dataclass
class AgentState:
    frontend: FrontEnd
    state: str  # ok, late, silent, never, disabled
    since: dt.timedelta | None

    @property
    def label(self) -> str:
        if self.state == "disabled":
            return "disabled"
        if self.since is None:
            return "never answered"
        return f"answered {seconds_label(self.since.total_seconds())} ago"

    @property
    def applications(self) -> dict[str, Any]:
        return (self.frontend.last_report or {}).get("applications") or {}

    @property
    def disk_free(self) -> int | None:
        return (self.frontend.last_report or {}).get("disk_free_bytes")


@dataclasses.dataclass
class EnvironmentCard:
    environment: Environment
    window: dict[str, Any] | None
    running_versions: list[RunningVersion]
    holder: DeploymentPlan | None
    holder_label: str
    holder_class: str
    waiting: float | None  # seconds a prepared plan has been waiting
    expires_at: dt.datetime | None
    expires_in: float | None
    current_stage: Stage | None
    current_step: Step | None
    last_plan: DeploymentPlan | None
    last_label: str
    last_class: str
    agents: list[AgentState]
    # A prepared plan's Continue SQL estimate (typical, pessimistic) in seconds, from Prepare.
    sql_estimate: tuple[float, float] | None = None
    # Where a prepared plan's approvals stand, on an environment that asks for them.
    approvals: approvals.ApprovalStatus | None = None
    # The freeze in force, or the next one (within the coming weeks).
    freeze: Any = None
    frozen_now: bool = False
    # Plans holding the environment side by side with ``holder`` (the first started), and the
    # plans waiting in its queue, first in first out.
    also_holding: list[DeploymentPlan] = dataclasses.field(default_factory=list)
    queued: list[DeploymentPlan] = dataclasses.field(default_factory=list)
    # Deployment zones: {name: front-end names}.
    zones: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def sql_estimate_label(self) -> str:
        if self.sql_estimate is None:
            return ""
        typical, pessimistic = self.sql_estimate
        return f"{seconds_label(typical)} (up to {seconds_label(pessimistic)})"

    @property
    def waiting_label(self) -> str:
        return seconds_label(self.waiting)

    @property
    def expires_label(self) -> str:
        return seconds_label(self.expires_in) if self.expires_in is not None else ""

    @property
    def agents_ok(self) -> int:
        return sum(1 for agent in self.agents if agent.state == "ok")

    @property
    def agents_enabled(self) -> int:
        return sum(1 for agent in self.agents if agent.state != "disabled")


def _agent_state(frontend: FrontEnd, now: dt.datetime) -> AgentState:
    if not frontend.enabled:
        return AgentState(frontend, "disabled", None)
    if frontend.last_seen_at is None:
        return AgentState(frontend, "never", None)
    since = now - frontend.last_seen_at
    state = "ok" if since <= AGENT_LATE else "late" if since <= AGENT_SILENT else "silent"
    return AgentState(frontend, state, since)


def environment_cards(environments: list[Environment], *, now: dt.datetime | None = None) -> list[EnvironmentCard]:
    now = now or timezone.now()
    env_ids = [env.pk for env in environments]
    # Every environment's further windows and its freezes, in two queries for the whole board.
    prefetch_related_objects(environments, "windows", "freezes")
    running: dict[int, list[RunningVersion]] = {}
    for rv in (
        RunningVersion.objects.filter(environment_id__in=env_ids)
        .select_related("application", "version")
        .order_by("application__name")
    ):
        running.setdefault(rv.environment_id, []).append(rv)
    # Holders and queued plans in one query: the board costs the same queries however many there are.
    all_holders: dict[int, list[DeploymentPlan]] = {}
    queued: dict[int, list[DeploymentPlan]] = {}
    for plan in (
        DeploymentPlan.objects.filter(target_id__in=env_ids, state__in=machine.HOLDING | {machine.P.QUEUED})
        .select_related("source", "target", "started_by")
        .prefetch_related(
            Prefetch(
                "stages",
                queryset=Stage.objects.order_by("queued_at", "id").prefetch_related(
                    Prefetch("steps", queryset=Step.objects.order_by("id"))
                ),
            )
        )
        .order_by("started_at", "id")
    ):
        (queued if plan.is_queued else all_holders).setdefault(plan.target_id, []).append(plan)
    for waiting in queued.values():
        waiting.sort(key=lambda plan: (plan.queued_at or plan.created_at, plan.pk))
    holders = {env_id: plans[0] for env_id, plans in all_holders.items()}
    # The newest final plan of each environment, in one query: a LIMIT 1 subquery per environment
    # reads one entry of the (target, finished_at) index, where DISTINCT ON sorted the whole history.
    newest_final = (
        DeploymentPlan.objects.filter(target_id=OuterRef("pk"), state__in=machine.FINAL, finished_at__isnull=False)
        .order_by("-finished_at")
        .values("pk")[:1]
    )
    last = {
        plan.target_id: plan
        for plan in DeploymentPlan.objects.filter(
            pk__in=Environment.objects.filter(pk__in=env_ids).annotate(last=Subquery(newest_final)).values("last")
        ).select_related("source")
    }
    estimates: dict[int, tuple[float, float]] = {}
    prepared_ids = [p.pk for p in holders.values() if p.is_waiting]
    for plan_id, totals, rehearsal in GeneratedSql.objects.filter(plan_id__in=prepared_ids).values_list(
        "plan_id", "estimate", "rehearsal_seconds"
    ):
        typical, pessimistic = estimates.get(plan_id, (0.0, 0.0))
        totals = totals or {}
        typical += float(totals.get("typical_s", rehearsal or 0.0))
        pessimistic += float(totals.get("pessimistic_s", rehearsal or 0.0))
        estimates[plan_id] = (typical, pessimistic)
    agents: dict[int, list[AgentState]] = {}
    zones: dict[int, dict[str, list[str]]] = {}
    # The zones of each front-end in the same query (an aggregate), not one more per environment.
    for fe in (
        FrontEnd.objects.filter(environment_id__in=env_ids)
        .annotate(zone_names=ArrayAgg("zones__name", filter=Q(zones__isnull=False), distinct=True, default=[]))
        .order_by("name")
    ):
        agents.setdefault(fe.environment_id, []).append(_agent_state(fe, now))
        for zone in sorted(fe.zone_names):
            zones.setdefault(fe.environment_id, {}).setdefault(zone, []).append(fe.name)
    cards = []
    for env in environments:
        holder = holders.get(env.pk)
        label, css = holder.tag if holder else ("", "")
        waiting = expires_at = expires_in = None
        current_stage = current_step = None
        if holder is not None and holder.prepared_since is not None:
            waiting = (now - holder.prepared_since).total_seconds()
            expires_at = holder.expires_at
            expires_in = max(0.0, (expires_at - now).total_seconds())
        if holder is not None and holder.is_running:
            stages = list(holder.stages.all())
            current_stage = next((s for s in reversed(stages) if s.status == StageState.RUNNING), None) or (
                stages[-1] if stages else None
            )
            if current_stage is not None:
                steps = list(current_stage.steps.all())
                current_step = next((s for s in reversed(steps) if s.status == StepState.RUNNING), None) or (
                    steps[-1] if steps else None
                )
        last_plan = last.get(env.pk)
        last_label, last_class = last_plan.tag if last_plan else ("", "")
        freeze = env.freeze_at(now)
        if not freeze_soon(freeze, now):
            freeze = None
        cards.append(
            EnvironmentCard(
                environment=env,
                window=window_state(env, now=now),
                running_versions=running.get(env.pk, []),
                holder=holder,
                holder_label=label,
                holder_class=css,
                waiting=waiting,
                expires_at=expires_at,
                expires_in=expires_in,
                current_stage=current_stage,
                current_step=current_step,
                last_plan=last_plan,
                last_label=last_label,
                last_class=last_class,
                agents=agents.get(env.pk, []),
                sql_estimate=estimates.get(holder.pk) if holder is not None else None,
                freeze=freeze,
                frozen_now=freeze is not None and freeze.start <= now < freeze.end,
                approvals=(
                    approvals.status_of(holder)
                    if holder is not None and holder.is_prepared and env.approvals_required
                    else None
                ),
                also_holding=all_holders.get(env.pk, [])[1:],
                zones=dict(sorted(zones.get(env.pk, {}).items())),
                queued=queued.get(env.pk, []),
            )
        )
    return cards


def board_signature(env_ids: list[int], *, now: dt.datetime) -> str:
    """Whether anything on the board changed, in one query: holders and their running steps, the newest
    transition and step anywhere, running versions, front-ends, environments; plus a clock that
    moves every BOARD_CLOCK_SECONDS so that relative times do not go stale."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            select
              (select coalesce(string_agg(id || ':' || state || ':'
                                          || coalesce(point_of_no_return_at::text, ''), ',' order by id), '')
                 from deployments_deploymentplan
                where target_id = any(%(envs)s) and state = any(%(holding)s)),
              -- the progress of the steps running now (the board shows the current step, not the log)
              (select coalesce(sum(st.done), 0) || ':' || count(*)
                 from deployments_step st
                 join deployments_stage s on s.id = st.stage_id
                 join deployments_deploymentplan p on p.id = s.plan_id
                where p.target_id = any(%(envs)s) and p.state = any(%(running)s) and st.status = %(step_running)s),
              (select coalesce(max(id), 0) from deployments_transition),
              (select coalesce(max(id), 0) from deployments_step),
              (select coalesce(max(id), 0) from deployments_stage),
              (select coalesce(max(since)::text, '') || ':' || count(*) from deployments_runningversion
                where environment_id = any(%(envs)s)),
              (select coalesce(string_agg(id || ':' || enabled || ':' || coalesce(last_seen_at::text, '')
                                          || ':' || coalesce(drift_since::text, ''), ',' order by id), '')
                 from environments_frontend where environment_id = any(%(envs)s)),
              (select coalesce(max(updated_at)::text, '') from environments_environment where id = any(%(envs)s)),
              -- decisions on approvals (a withdrawal changes the count of standing ones)
              (select coalesce(max(id), 0) || ':' || count(*) from deployments_approval where withdrawn_at is null)
            """,
            {
                "envs": env_ids,
                "holding": sorted(machine.HOLDING),
                "running": sorted(machine.RUNNING),
                "step_running": StepState.RUNNING,
            },
        )
        row = cursor.fetchone()
    clock = int(now.timestamp()) // BOARD_CLOCK_SECONDS
    raw = "|".join(map(str, [*row, clock, ",".join(map(str, sorted(env_ids)))]))
    return hashlib.sha1(raw.encode()).hexdigest()


FREEZE_HORIZON = dt.timedelta(days=14)


def freeze_soon(freeze: Any, now: dt.datetime) -> bool:
    """A freeze worth a line on the board: in force, or starting within two weeks."""
    return freeze is not None and freeze.start - now < FREEZE_HORIZON


def window_state(environment: Environment, *, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """For the board: is the window open now, and until when, or when does it open next."""
    now = now or timezone.now()
    window = environment.window_at(now)
    if window is None:
        return None
    start, end = window
    is_open = start <= now < end
    return {
        "open": is_open,
        "start": start,
        "end": end,
        "label": (
            f"open, {seconds_label((end - now).total_seconds())} left"
            if is_open
            else f"opens in {seconds_label((start - now).total_seconds())}"
        ),
    }
