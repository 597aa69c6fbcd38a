"""The plan status page and its live fragment: what to load (a fixed number of queries whatever the
size of the log or the history), the ETag that lets unchanged polls end in ``304``, and when htmx
polls and when it stops.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import sqlparse
from django.core.cache import cache
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from core.durations import seconds_label
from deployments.models import (
    DeploymentPlan,
    GeneratedSql,
    MobilePackage,
    Stage,
    Step,
)
from deployments.plans import approvals
from deployments.plans import services as plans
from deployments.stages.estimate import continue_estimate
from deployments.state import machine
from deployments.statements.parse import FLAG_LABELS
from deployments.status import progress
from deployments.status.pulse import PlanPulse, plan_pulse
from environments import access
from environments.models import AccessLevel

# The page opens on the newest lines of the log; earlier ones come a window at a time on demand.
LOG_WINDOW = 200
# The most lines one poll brings; the next poll brings the rest.
LIVE_BATCH = 500
# How often the page asks for news: quickly while something runs, slowly while a plan waits for
# a person (someone else may continue or abort it), never once it is final.
POLL_RUNNING = "2s"
POLL_WAITING = "10s"
# How long a rendering of the stages serves the viewers of an unchanged plan: their clocks tick in
# the browser (data-since), only the timeline's running bar stops growing meanwhile.
STAGES_CACHE_SECONDS = 10


def poll_interval(state: str) -> str | None:
    if machine.is_final(state) or machine.is_saved(state):
        return None
    if machine.is_waiting(state):
        return POLL_WAITING
    return POLL_RUNNING


def live_state(plan: DeploymentPlan | PlanPulse) -> str:
    """What decides the buttons, the SQL and the history: when it changes, the poll re-sends them.
    The state says everything, the point of no return included."""
    return plan.state


def make_etag(stages: str, *, log_seq: int, after: int, state: str, can_deploy: bool) -> str:
    raw = f"{stages}|{log_seq}|{after}|{state}|{int(can_deploy)}"
    return '"' + hashlib.sha1(raw.encode()).hexdigest()[:24] + '"'


def _etag_matches(request: HttpRequest, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    return any(candidate.strip() in (etag, f"W/{etag}") for candidate in header.split(","))


@functools.lru_cache(maxsize=4096)
def format_sql(sql: str) -> str:
    """Upper-case keywords; queries re-indented by sqlparse, a CREATE TABLE one column a line
    (sqlparse's re-indent aligns columns under the opening parenthesis, unreadable when long)."""
    statement = sqlparse.parse(sql)[0] if sql.strip() else None
    if statement is None:
        return ""
    upper = sqlparse.format(sql, keyword_case="upper").strip()
    if statement.get_type() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
        return sqlparse.format(sql, reindent=True, keyword_case="upper", indent_width=2).strip()
    if upper.startswith("CREATE TABLE") and "(" in upper and upper.rstrip(";").endswith(")"):
        head, _, body = upper.partition("(")
        return head.rstrip() + " (\n  " + ",\n  ".join(_top_level_items(body.rstrip(";")[:-1])) + "\n)"
    return upper


def _top_level_items(body: str) -> list[str]:
    """Split a column list at the commas that are not inside parentheses or quotes."""
    items, depth, quoted, current = [], 0, False, []
    for char in body:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def _stages(plan: DeploymentPlan) -> list[Stage]:
    return list(
        Stage.objects.filter(plan=plan)
        .order_by("queued_at", "id")
        .prefetch_related(Prefetch("steps", queryset=Step.objects.order_by("id")))
    )


def _generated(plan: DeploymentPlan) -> list[GeneratedSql]:
    return list(
        GeneratedSql.objects.filter(plan=plan).select_related("application", "version").order_by("application__name")
    )


def _live_context(
    plan: DeploymentPlan,
    *,
    can_deploy: bool,
    operations: list,
    generated: list[GeneratedSql],
) -> dict[str, Any]:
    now = timezone.now()
    frontends = plan.target.frontends.filter(enabled=True).count()
    shape = progress.plan_shape(operations, frontends, generated)
    views = progress.stage_views(plan, _stages(plan), shape, now=now)
    label, css = plan.tag
    current = progress.current_step(views)
    # At 02:00 what matters is how long the stage that runs has been running, not the days
    # since Prepare; once nothing runs, the time the stages took.
    running = next((view for view in views if view.running), None)
    if running is not None:
        clock_since, elapsed = running.stage.started_at, running.elapsed
    else:
        clock_since, elapsed = None, sum(view.elapsed or 0.0 for view in views) if views[0].stage else None
    return {
        "plan": plan,
        "status_label": label,
        "status_class": css,
        "can_deploy": can_deploy,
        "stage_views": views,
        "current": current,
        "elapsed": seconds_label(elapsed) if elapsed is not None else "",
        "clock_since": clock_since,
        "frontend_count": frontends,
        "expires_at": plan.expires_at,
        "now": now,
        "queue_position": plans.queue_position(plan),
    }


def _settled_context(plan: DeploymentPlan, generated: list[GeneratedSql], frontends: int) -> dict[str, Any]:
    """What only changes with the plan's status: the SQL, the packages, the history, the estimate."""
    history = list(plan.transitions.order_by("at", "id"))
    suspended_reason = history[-1].reason if history and plan.is_suspended else ""
    sql = [
        {
            "row": g,
            "statements": [
                {
                    **statement,
                    "formatted": format_sql(statement.get("sql", "")),
                    "flag_labels": [(flag, FLAG_LABELS.get(flag, flag)) for flag in statement.get("flags") or []],
                }
                for statement in g.statements
            ],
            "flagged": sum(1 for statement in g.statements if statement.get("flags")),
        }
        for g in generated
    ]
    return {
        "history": history,
        "suspended_reason": suspended_reason,
        "generated_sql": sql,
        "mobile_packages": list(
            MobilePackage.objects.filter(plan=plan)
            .select_related("application", "version")
            .order_by("application__name")
        ),
        "estimate": continue_estimate(plan, generated, frontends) if plan.is_prepared else None,
        **_freeze_context(plan),
        "outside_enforced_window": (
            plan.target.enforce_window and plan.target.has_window and not plan.target.window_open()
        ),
    }


def _freeze_context(plan: DeploymentPlan) -> dict[str, Any]:
    """The freeze the target is in now, if any: Continue and Deploy Now then need the manage right and a reason."""
    if plan.is_final:
        return {"frozen": None}
    period = plan.target.frozen_at()
    return {"frozen": period, "frozen_sentence": period.sentence(plan.target.name) if period else ""}


def _approvals_context(request: HttpRequest, plan: DeploymentPlan) -> dict[str, Any]:
    """Who approved the plan as prepared, what is missing, and what this user may say."""
    if not plan.target.approvals_required or not (plan.is_prepared or plan.is_suspended):
        return {"approvals": None}
    status = approvals.status_of(plan)
    mine = next((a for a in status.counted + status.not_counted if a.user_id == request.user.pk), None)
    return {
        "approvals": status,
        "may_decide": approvals.may_decide(request.user, plan),
        "my_approval": mine,
    }


def plan_page_context(request: HttpRequest, plan: DeploymentPlan, *, can_deploy: bool) -> dict[str, Any]:
    # Read before the stages and the log are: whatever changes while the page is being built
    # makes its first poll a 200 that brings it, never a 304 that would hide it.
    pulse = plan_pulse(pk=plan.pk)
    operations = list(plan.operations.select_related("application", "version").order_by("application__name"))
    generated = _generated(plan)
    context = _live_context(plan, can_deploy=can_deploy, operations=operations, generated=generated)
    context.update(_settled_context(plan, generated, context["frontend_count"]))
    context["can_manage"] = access.can(request.user, plan.target_id, AccessLevel.MANAGE)
    context.update(_approvals_context(request, plan))
    newest = list(plan.log_lines.order_by("-seq")[:LOG_WINDOW])[::-1]
    last_seq = newest[-1].seq if newest else 0
    stages = pulse.stages if pulse is not None else ""  # vanished meanwhile: the next poll answers 404
    log_seq = pulse.log_seq if pulse is not None else plan.log_seq
    # The buttons and the history were rendered from this plan object: the state it had.
    state = live_state(plan)
    context.update(
        operations=operations,
        log_lines=newest,
        earlier_lines=newest[0].seq - 1 if newest else 0,
        last_seq=last_seq,
        after=last_seq,
        state=state,
        poll=poll_interval(plan.state),
        stages_seen=stages,
        etag=make_etag(stages, log_seq=log_seq, after=last_seq, state=state, can_deploy=can_deploy),
        validation=None,
        holder=None,
        candidates=None,
        selected={},
    )
    return context


def _not_modified(etag: str) -> HttpResponse:
    response = HttpResponseNotModified()
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


def plan_live_response(
    request: HttpRequest,
    pulse: PlanPulse,
    *,
    can_deploy: bool,
    load_plan: Callable[[], DeploymentPlan],
) -> HttpResponse:
    """The live fragment. Decided from the pulse alone (one small query) before anything is loaded:
    an unchanged plan answers ``304``; a plan whose only news is log lines answers them without
    loading the plan; the plan itself (``load_plan``) is loaded only to render its stages or the
    parts that change with its status."""
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    state = live_state(pulse)
    stages = pulse.stages
    etag = make_etag(stages, log_seq=pulse.log_seq, after=after, state=state, can_deploy=can_deploy)
    final = pulse.is_final
    # A final plan always gets its last fragment with 286, never a 304 that would keep htmx polling.
    if not final and request.GET.get("state") == state and _etag_matches(request, etag):
        return _not_modified(etag)
    # Most polls of a running plan only bring log lines: the stages are re-sent only when they changed.
    stages_changed = request.GET.get("view") != stages or final
    settled = request.GET.get("state") != state
    # A change of the stages reaches every viewer within one poll interval: they all get the same
    # rendering, made once (per process) and kept for the digest it was made for.
    stages_key = f"plan-stages:{pulse.key}:{stages}:{int(can_deploy)}"
    stages_html = cache.get(stages_key) if stages_changed else None
    if stages_html is not None:
        stages_html = mark_safe(stages_html)  # rendered by our own template: already escaped
    if settled or (stages_changed and stages_html is None):
        plan = load_plan()
    else:
        # Only log lines (and perhaps the stages already rendered) to send: the fragment needs the
        # plan's key, status and id, which the pulse has. Loading the plan and its six relations
        # would double the cost of the poll.
        plan = DeploymentPlan(pk=pulse.plan_id, key=pulse.key, target_id=pulse.target_id, state=pulse.state)
    lines = list(plan.log_lines.filter(seq__gt=after).order_by("seq")[:LIVE_BATCH])
    new_after = lines[-1].seq if lines else after
    context: dict[str, Any] = {"plan": plan, "can_deploy": can_deploy}
    if settled or (stages_changed and stages_html is None):
        operations = list(plan.operations.select_related("application", "version").order_by("application__name"))
        generated = _generated(plan)
        context.update(_live_context(plan, can_deploy=can_deploy, operations=operations, generated=generated))
        context["operations"] = operations
        if stages_changed and stages_html is None:
            stages_html = render_to_string("deployments/_plan_stages_live.html", context, request)
            cache.set(stages_key, stages_html, STAGES_CACHE_SECONDS)
        if settled:
            context.update(_settled_context(plan, generated, context["frontend_count"]))
            context["can_manage"] = access.can(request.user, plan.target_id, AccessLevel.MANAGE)
            context.update(_approvals_context(request, plan))
    context.update(_approvals_context(request, plan))
    context.update(
        stages_html=stages_html,
        lines=lines,
        after=new_after,
        state=state,
        settled=settled,
        stages_changed=stages_changed,
        stages_seen=stages,
        poll=poll_interval(plan.state),
        # What the next poll will compute if nothing changes meanwhile: it then gets a 304.
        etag=make_etag(stages, log_seq=pulse.log_seq, after=new_after, state=state, can_deploy=can_deploy),
    )
    response = render(request, "deployments/_plan_live.html", context)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    if final:
        response.status_code = 286  # htmx: stop polling (the fragment is still swapped in)
    return response
