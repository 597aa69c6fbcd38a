"""What the plan status page shows of a plan's stages: progress per step, the timeline, the
signature that says whether anything changed, and the Continue estimate against the window.

Read-only. Every function takes what it needs already loaded (the views load it in a fixed
number of queries) so that the page costs the same whatever the size of the plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import statistics
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from deployments.models import (
    ApplicationKind,
    DeploymentPlan,
    GeneratedSql,
    OperationKind,
    PlanOperation,
    Stage,
    StageKind,
    StageStatus,
    Step,
    StepKind,
    StepStatus,
)
from environments.models import Environment

K = StepKind

# The steps of each stage in the order they run, with the word their progress counts in.
STAGE_PLAN: dict[str, list[tuple[str, str]]] = {
    StageKind.PREPARE: [
        (K.VALIDATE, ""),
        (K.COMPILE, "applications"),
        (K.GENERATE_SQL, "applications"),
        (K.UPLOAD, "front-ends"),
    ],
    StageKind.CONTINUE: [
        (K.CHECK, ""),
        (K.EXECUTE_SQL, "statements"),
        (K.SWITCH, "front-ends"),
        (K.MOBILE_PACKAGE, "packages"),
    ],
}
GROUP_LABELS = {
    K.VALIDATE: "Validate the plan",
    K.COMPILE: "Compile",
    K.GENERATE_SQL: "Generate and rehearse SQL",
    K.UPLOAD: "Upload binaries",
    K.CHECK: "Check the plan still holds",
    K.EXECUTE_SQL: "Execute SQL",
    K.SWITCH: "Switch front-ends",
    K.MOBILE_PACKAGE: "Mobile packages",
}


def seconds_label(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _elapsed(started: dt.datetime | None, finished: dt.datetime | None, now: dt.datetime) -> float | None:
    if started is None:
        return None
    return max(0.0, ((finished or now) - started).total_seconds())


@dataclasses.dataclass
class StepRow:
    step: Step
    percent: int
    elapsed: float | None

    @property
    def elapsed_label(self) -> str:
        return seconds_label(self.elapsed)

    @property
    def running(self) -> bool:
        return self.step.status == StepStatus.RUNNING


@dataclasses.dataclass
class StepGroup:
    """One kind of step in a stage: "Compile 2 of 3 applications", with a row per application or front-end."""

    kind: str
    label: str
    unit: str
    done: int
    total: int
    status: str  # pending, running, done, failed, skipped
    rows: list[StepRow]
    started_at: dt.datetime | None
    elapsed: float | None

    @property
    def percent(self) -> int:
        if self.status in (StepStatus.DONE, StepStatus.SKIPPED):
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def elapsed_label(self) -> str:
        return seconds_label(self.elapsed)

    @property
    def counter(self) -> str:
        if not self.unit or not self.total:
            return ""
        verb = {
            "applications": "compiled" if self.kind == K.COMPILE else "generated",
            "front-ends": "uploaded" if self.kind == K.UPLOAD else "switched",
            "statements": "executed",
            "packages": "built",
        }[self.unit]
        return f"{self.done} of {self.total} {self.unit} {verb}"

    @property
    def per_subject(self) -> bool:
        return any(row.step.subject for row in self.rows)


@dataclasses.dataclass
class StageView:
    kind: str
    stage: Stage | None  # None: this stage has not started yet
    groups: list[StepGroup]
    elapsed: float | None
    earlier: list[Stage]  # earlier attempts of the same kind, newest last
    point_of_no_return_at: dt.datetime | None = None

    @property
    def label(self) -> str:
        return "1 · Prepare" if self.kind == StageKind.PREPARE else "2 · Continue"

    @property
    def status(self) -> str:
        return self.stage.status if self.stage else "pending"

    @property
    def status_label(self) -> str:
        return self.stage.get_status_display() if self.stage else "Not started"

    @property
    def elapsed_label(self) -> str:
        return seconds_label(self.elapsed)

    @property
    def running(self) -> bool:
        return self.stage is not None and self.stage.status == StageStatus.RUNNING

    @property
    def timeline(self) -> SafeString:
        return timeline_svg(self)


@dataclasses.dataclass(frozen=True)
class PlanShape:
    """What the plan will do, to show totals before the steps exist: N applications, F front-ends."""

    applications: int
    mobile_applications: int
    frontends: int
    statements: int


def plan_shape(operations: Sequence[PlanOperation], frontends: int, generated: Sequence[GeneratedSql]) -> PlanShape:
    deploys = [op for op in operations if op.kind == OperationKind.DEPLOY and op.version_id]
    return PlanShape(
        applications=len(deploys),
        mobile_applications=sum(1 for op in deploys if op.application.kind == ApplicationKind.MOBILE),
        frontends=frontends,
        statements=sum(len(g.statements) for g in generated),
    )


def _expected_total(kind: str, shape: PlanShape) -> int:
    return {
        K.VALIDATE: 1,
        K.CHECK: 1,
        K.COMPILE: shape.applications,
        K.GENERATE_SQL: shape.applications,
        K.UPLOAD: shape.frontends if shape.applications else 0,
        K.EXECUTE_SQL: shape.statements,
        K.SWITCH: shape.frontends,
        K.MOBILE_PACKAGE: shape.mobile_applications,
    }[kind]


def _group(
    kind: str, unit: str, steps: list[Step], shape: PlanShape, stage: Stage | None, now: dt.datetime
) -> StepGroup:
    rows = []
    for step in steps:
        if step.status in (StepStatus.DONE, StepStatus.SKIPPED):
            percent = 100
        else:
            percent = int(100 * step.done / step.total) if step.total else 0
        rows.append(StepRow(step, percent, _elapsed(step.started_at, step.finished_at, now)))
    statuses = {s.status for s in steps}
    expected = _expected_total(kind, shape)
    if kind == K.EXECUTE_SQL:
        # One step counting statements: its own done/total is the truth once it exists.
        done = sum(s.done for s in steps) if steps else 0
        total = max((s.total for s in steps), default=expected)
    elif unit:
        total = max(expected, len(steps))
        done = sum(1 for s in steps if s.status in (StepStatus.DONE, StepStatus.SKIPPED))
    else:
        total = 1
        done = 1 if steps and all(s.status == StepStatus.DONE for s in steps) else 0
    if StepStatus.FAILED in statuses:
        status = StepStatus.FAILED
    elif StepStatus.RUNNING in statuses:
        status = StepStatus.RUNNING
    elif steps and (done >= total or (stage is not None and stage.status != StageStatus.RUNNING)):
        status = StepStatus.DONE if StepStatus.DONE in statuses else StepStatus.SKIPPED
    elif steps:
        status = StepStatus.RUNNING  # between two steps of the same kind
    elif stage is not None and stage.status == StageStatus.SUCCEEDED:
        status = StepStatus.SKIPPED  # nothing of this kind to do (no mobile app, nothing to upload)
    else:
        status = "pending"
    started = min((s.started_at for s in steps if s.started_at), default=None)
    if steps and all(s.finished_at for s in steps):
        finished = max(s.finished_at for s in steps if s.finished_at)
    else:
        finished = None
    return StepGroup(
        kind=kind,
        label=GROUP_LABELS[kind],
        unit=unit,
        done=done,
        total=total,
        status=status,
        rows=rows,
        started_at=started,
        elapsed=_elapsed(started, finished, now) if steps else None,
    )


def stage_views(
    plan: DeploymentPlan, stages: Sequence[Stage], shape: PlanShape, *, now: dt.datetime | None = None
) -> list[StageView]:
    """Prepare and Continue, the latest attempt of each with its step groups; pending ones included
    (a prepared plan shows what Continue will do). ``stages`` come with their steps prefetched."""
    now = now or timezone.now()
    by_kind: dict[str, list[Stage]] = {StageKind.PREPARE: [], StageKind.CONTINUE: []}
    for stage in stages:
        by_kind.setdefault(stage.kind, []).append(stage)
    views = []
    for kind, order in STAGE_PLAN.items():
        attempts = by_kind.get(kind, [])
        latest = attempts[-1] if attempts else None
        steps = list(latest.steps.all()) if latest else []
        groups = []
        for step_kind, unit in order:
            group = _group(step_kind, unit, [s for s in steps if s.kind == step_kind], shape, latest, now)
            if group.total == 0 and not group.rows and step_kind == K.MOBILE_PACKAGE:
                continue  # no mobile application in the plan: no line for it
            groups.append(group)
        elapsed = _elapsed(latest.started_at, latest.finished_at, now) if latest else None
        views.append(
            StageView(
                kind=kind,
                stage=latest,
                groups=groups,
                elapsed=elapsed,
                earlier=attempts[:-1],
                point_of_no_return_at=plan.point_of_no_return_at if kind == StageKind.CONTINUE else None,
            )
        )
    return views


def current_step(views: Sequence[StageView]) -> tuple[StageView, StepGroup] | None:
    for view in views:
        if view.running:
            for group in view.groups:
                if group.status == StepStatus.RUNNING:
                    return view, group
            return view, view.groups[0]
    return None


# --- the timeline -------------------------------------------------------------------------------

TIMELINE_WIDTH = 1000
LABEL_WIDTH = 230
ROW_HEIGHT = 22
AXIS_HEIGHT = 24
STATUS_COLOURS = {
    StepStatus.DONE: "#1a7f37",
    StepStatus.RUNNING: "#1f6feb",
    StepStatus.FAILED: "#c62828",
    StepStatus.SKIPPED: "#9aa5b1",
    StepStatus.PENDING: "#c9d1d9",
}


def _tick_step(span: float) -> float:
    for candidate in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span / candidate <= 8:
            return candidate
    return 14400


def timeline_svg(view: StageView, *, now: dt.datetime | None = None) -> SafeString:
    """An inline SVG: one bar per step (per application, per front-end) on the stage's own clock,
    so that one sees where the time went. Empty when the stage has not started."""
    stage = view.stage
    if stage is None or stage.started_at is None:
        return mark_safe("")
    now = now or timezone.now()
    rows = [(group, row) for group in view.groups for row in group.rows if row.step.started_at]
    if not rows:
        return mark_safe("")
    start = stage.started_at
    end = stage.finished_at or now
    end = max([end, *(row.step.finished_at or now for _, row in rows)])
    span = max((end - start).total_seconds(), 0.5)
    plot = TIMELINE_WIDTH - LABEL_WIDTH - 10

    def x(moment: dt.datetime) -> float:
        return LABEL_WIDTH + plot * max(0.0, (moment - start).total_seconds()) / span

    height = AXIS_HEIGHT + ROW_HEIGHT * len(rows) + 6
    parts = [
        f'<svg class="timeline" viewBox="0 0 {TIMELINE_WIDTH} {height}" width="100%" role="img" '
        f'aria-label="Timeline of {escape(view.label)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    tick = _tick_step(span)
    value = 0.0
    while value <= span + 1e-9:
        tx = LABEL_WIDTH + plot * value / span
        parts.append(f'<line x1="{tx:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{tx:.1f}" y2="{height}" class="tick"/>')
        parts.append(f'<text x="{tx:.1f}" y="{AXIS_HEIGHT - 10}" class="axis">{escape(_tick_label(value))}</text>')
        value += tick
    for index, (group, row) in enumerate(rows):
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        step = row.step
        label = group.label if not step.subject else f"{GROUP_LABELS[step.kind].split(' ')[0]} · {step.subject}"
        x0 = x(step.started_at)
        x1 = max(x(step.finished_at or now), x0 + 2)
        colour = STATUS_COLOURS.get(step.status, "#9aa5b1")
        title = f"{label}: {row.elapsed_label} ({step.get_status_display().lower()})"
        if index % 2:
            parts.append(f'<rect x="0" y="{y}" width="{TIMELINE_WIDTH}" height="{ROW_HEIGHT}" class="band"/>')
        parts.append(f'<text x="4" y="{y + 15}" class="label">{escape(label[:34])}</text>')
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{x1 - x0:.1f}" height="{ROW_HEIGHT - 8}" rx="3" '
            f'fill="{colour}"{" class=running" if step.status == StepStatus.RUNNING else ""}>'
            f"<title>{escape(title)}</title></rect>"
        )
        if x1 < TIMELINE_WIDTH - 70:
            parts.append(f'<text x="{x1 + 4:.1f}" y="{y + 15}" class="value">{escape(row.elapsed_label)}</text>')
    ponr = view.point_of_no_return_at
    if ponr is not None and start <= ponr <= end:
        px = x(ponr)
        parts.append(f'<line x1="{px:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{px:.1f}" y2="{height}" class="ponr"/>')
        parts.append(f'<text x="{px + 3:.1f}" y="{height - 4}" class="ponr">point of no return</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _tick_label(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


# --- has anything changed? ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlanPulse:
    """What decides whether a status page is out of date, read in one small query before anything
    is rendered: the plan's status and marks, its log counter, and a digest of its stages."""

    plan_id: int
    key: str
    target_id: int
    status: str
    info: str
    log_seq: int
    point_of_no_return: bool
    stages: str  # digest of the status, the marks and every stage and step; not the log


# The plan's row and, in the same statement, an aggregate of its stages and steps (status,
# progress, ends): a poll learns whether anything changed without loading or rendering a thing.
_PULSE_SQL = """
select p.id, p.key, p.target_id, p.status, p.info, p.log_seq,
       p.point_of_no_return_at, p.prepared_at, p.finished_at,
       agg.*
  from deployments_deploymentplan p
  cross join lateral (
    select count(distinct s.id),
           coalesce(string_agg(distinct s.id::text || s.status, ','), ''),
           count(st.id), coalesce(sum(st.done), 0), coalesce(sum(st.total), 0),
           count(st.finished_at), coalesce(max(st.id), 0),
           coalesce(sum(case when st.status = 'failed' then 1 else 0 end), 0)
      from deployments_stage s left join deployments_step st on st.stage_id = s.id
     where s.plan_id = p.id
  ) agg
 where p.{column} = %s
"""


def plan_pulse(*, pk: int | None = None, key: Any = None) -> PlanPulse | None:
    """The pulse of the plan with this id (or key); None when there is no such plan. One query."""
    column, value = ("id", pk) if pk is not None else ("key", str(key))
    with connection.cursor() as cursor:
        cursor.execute(_PULSE_SQL.format(column=column), [value])
        row = cursor.fetchone()
    if row is None:
        return None
    plan_id, plan_key, target_id, status, info, log_seq, ponr, prepared_at, finished_at, *steps = row
    parts = [status, info, str(ponr), str(prepared_at), str(finished_at), *map(str, steps)]
    return PlanPulse(
        plan_id=plan_id,
        key=str(plan_key),
        target_id=target_id,
        status=status,
        info=info,
        log_seq=log_seq,
        point_of_no_return=ponr is not None,
        stages=hashlib.sha1("|".join(parts).encode()).hexdigest()[:16],
    )


def stages_signature(plan: DeploymentPlan) -> str:
    """A short digest of what the stages part of the page shows: the plan's status and marks, and
    every stage and step (status, progress, end); not the log, which has its own cursor. One query."""
    pulse = plan_pulse(pk=plan.pk)
    return pulse.stages if pulse is not None else ""


# --- Continue against the window ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContinueEstimate:
    sql_seconds: float  # typical, from the target's table sizes and calibrated throughputs
    switch_seconds_per_frontend: float
    frontends: int
    history: int  # how many past Continues on the target the switch time comes from
    window: tuple[dt.datetime, dt.datetime] | None
    now: dt.datetime
    sql_pessimistic_seconds: float = 0.0
    basis: str = ""  # what the SQL throughputs come from, said on the page
    rehearsal_seconds: float = 0.0  # the statements on an empty copy: their catalog part

    DEFAULT_SWITCH_S = 5.0  # no Continue ran there yet: a cautious guess per front-end

    @property
    def switch_seconds(self) -> float:
        return self.switch_seconds_per_frontend * self.frontends

    @property
    def seconds(self) -> float:
        return self.sql_seconds + self.switch_seconds

    @property
    def pessimistic_seconds(self) -> float:
        # The switch's pessimistic end: twice the usual time per front-end.
        return max(self.sql_pessimistic_seconds, self.sql_seconds) + 2 * self.switch_seconds

    @property
    def label(self) -> str:
        return seconds_label(self.seconds)

    @property
    def pessimistic_label(self) -> str:
        return seconds_label(self.pessimistic_seconds)

    @property
    def window_open(self) -> bool:
        return self.window is not None and self.window[0] <= self.now < self.window[1]

    @property
    def window_seconds_left(self) -> float | None:
        """Time left in the open window, or the whole length of the next one."""
        if self.window is None:
            return None
        start, end = self.window
        return (end - max(start, self.now)).total_seconds()

    @property
    def fits(self) -> bool | None:
        """Whether the pessimistic end fits in what is left of the window (None: no window)."""
        left = self.window_seconds_left
        return None if left is None else self.pessimistic_seconds <= left

    @property
    def typical_fits(self) -> bool | None:
        left = self.window_seconds_left
        return None if left is None else self.seconds <= left

    @property
    def share_of_window(self) -> int:
        left = self.window_seconds_left
        return min(100, int(100 * self.seconds / left)) if left else 100

    @property
    def pessimistic_share_of_window(self) -> int:
        left = self.window_seconds_left
        return min(100, int(100 * self.pessimistic_seconds / left)) if left else 100

    def refusal(self) -> str | None:
        """The sentence Continue refuses with when the pessimistic end does not fit, else None."""
        if self.fits is not False:
            return None
        left = self.window_seconds_left or 0.0
        return (
            f"Continue may take up to {self.pessimistic_label} (typically {self.label}), more than the "
            f"{seconds_label(left)} left in the deployment window: a user with the manage right may continue "
            "anyway with a reason."
        )

    def as_api(self) -> dict[str, Any]:
        """The API's ContinueEstimate extension field."""
        left = self.window_seconds_left
        return {
            "TypicalSeconds": round(self.seconds, 3),
            "PessimisticSeconds": round(self.pessimistic_seconds, 3),
            "SqlTypicalSeconds": round(self.sql_seconds, 3),
            "SqlPessimisticSeconds": round(max(self.sql_pessimistic_seconds, self.sql_seconds), 3),
            "WindowRemainingSeconds": None if left is None else round(left, 1),
            "WindowOpen": self.window_open,
            "Fits": self.fits,
            "Basis": self.basis,
        }


def continue_estimate(
    plan: DeploymentPlan, generated: Sequence[GeneratedSql], frontends: int, *, now: dt.datetime | None = None
) -> ContinueEstimate:
    """SQL from the estimate Prepare made from the target's table sizes (per statement, typical and
    pessimistic), the switch from past Continues on the target (two queries: the generated SQL is
    passed in)."""
    now = now or timezone.now()
    sql_typical = sql_pessimistic = 0.0
    bases: list[str] = []
    for g in generated:
        totals = g.estimate or {}
        if totals:
            sql_typical += float(totals.get("typical_s") or 0.0)
            sql_pessimistic += float(totals.get("pessimistic_s") or 0.0)
            if totals.get("throughputs"):
                from deployments.steps.sql_estimate import basis_sentence

                bases.append(basis_sentence(totals["throughputs"]))
        else:  # prepared before estimates existed: the rehearsal's timing, as then
            sql_typical += g.rehearsal_seconds or 0.0
            sql_pessimistic += g.rehearsal_seconds or 0.0
    past = list(
        Step.objects.filter(
            kind=K.SWITCH,
            status=StepStatus.DONE,
            stage__kind=StageKind.CONTINUE,
            stage__plan__target_id=plan.target_id,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .exclude(stage__plan_id=plan.pk)
        .order_by("-id")
        .values_list("stage_id", "started_at", "finished_at")[:200]
    )
    durations = [(finished - started).total_seconds() for _, started, finished in past]
    per_frontend = statistics.median(durations) if durations else ContinueEstimate.DEFAULT_SWITCH_S
    return ContinueEstimate(
        sql_seconds=sql_typical,
        switch_seconds_per_frontend=per_frontend,
        frontends=frontends,
        history=len({stage_id for stage_id, _, _ in past}),
        window=plan.target.window_at(now),
        now=now,
        sql_pessimistic_seconds=sql_pessimistic,
        basis="; ".join(dict.fromkeys(b for b in bases if b)),
        rehearsal_seconds=sum(g.rehearsal_seconds or 0.0 for g in generated),
    )


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
