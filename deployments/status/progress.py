"""What the plan status page shows of a plan's stages: progress per step, grouped as people read
them (compile n of N, upload per front-end, SQL statements executed, front-ends switched).

Read-only. Every function takes what it needs already loaded (the views load it in a fixed
number of queries) so that the page costs the same whatever the size of the plan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from django.utils import timezone
from django.utils.safestring import SafeString

from core.durations import seconds_label
from deployments.models import (
    ApplicationKind,
    DeploymentPlan,
    GeneratedSql,
    OperationKind,
    PlanOperation,
    Stage,
    StageKind,
    StageState,
    Step,
    StepKind,
    StepState,
)
from deployments.state import machine
from deployments.status.timeline import timeline_svg

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
        (K.SETTINGS, ""),
        (K.EXECUTE_SQL, "statements"),
        (K.SWITCH, "front-ends"),
        (K.MOBILE_PACKAGE, "packages"),
    ],
    # Shown only once a Roll Back was asked for.
    StageKind.ROLLBACK: [
        (K.CHECK, ""),
        (K.SWITCH, "front-ends"),
    ],
}
# Groups shown only when their steps exist (nothing of the kind to do otherwise).
ONLY_WHEN_DONE = {K.SETTINGS}
GROUP_LABELS = {
    K.VALIDATE: "Validate the plan",
    K.COMPILE: "Compile",
    K.GENERATE_SQL: "Generate and rehearse SQL",
    K.UPLOAD: "Upload binaries",
    K.CHECK: "Check the plan still holds",
    K.SETTINGS: "Put settings in place",
    K.EXECUTE_SQL: "Execute SQL",
    K.SWITCH: "Switch front-ends",
    K.MOBILE_PACKAGE: "Mobile packages",
}


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
        return self.step.status == StepState.RUNNING


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
        if machine.step_is_complete(self.status):
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

    @property
    def running(self) -> bool:
        return self.status == StepState.RUNNING

    @property
    def waiting(self) -> bool:
        return self.status == StepState.PENDING

    @property
    def status_label(self) -> str:
        return "waiting" if self.waiting else StepState(self.status).label.lower()


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
        return {StageKind.PREPARE: "1 · Prepare", StageKind.CONTINUE: "2 · Continue"}.get(self.kind, "Roll Back")

    @property
    def status(self) -> str:
        return self.stage.status if self.stage else StepState.PENDING

    @property
    def css(self) -> str:
        """The tag's class: running, successful, errors, aborted; none before it starts."""
        return self.stage.css if self.stage else ""

    @property
    def succeeded(self) -> bool:
        return self.stage is not None and self.stage.status == StageState.SUCCEEDED

    @property
    def status_label(self) -> str:
        return self.stage.get_status_display() if self.stage else "Not started"

    @property
    def elapsed_label(self) -> str:
        return seconds_label(self.elapsed)

    @property
    def running(self) -> bool:
        return self.stage is not None and self.stage.status == StageState.RUNNING

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
        K.SETTINGS: 1,
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
        if machine.step_is_complete(step.status):
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
        done = sum(1 for s in steps if machine.step_is_complete(s.status))
    else:
        total = 1
        done = 1 if steps and all(s.status == StepState.DONE for s in steps) else 0
    if StepState.FAILED in statuses:
        status = StepState.FAILED
    elif StepState.RUNNING in statuses:
        status = StepState.RUNNING
    elif steps and (done >= total or (stage is not None and stage.status != StageState.RUNNING)):
        status = StepState.DONE if StepState.DONE in statuses else StepState.SKIPPED
    elif steps:
        status = StepState.RUNNING  # between two steps of the same kind
    elif stage is not None and stage.status == StageState.SUCCEEDED:
        status = StepState.SKIPPED  # nothing of this kind to do (no mobile app, nothing to upload)
    else:
        status = StepState.PENDING
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
        if kind == StageKind.ROLLBACK and not attempts:
            continue
        latest = attempts[-1] if attempts else None
        steps = list(latest.steps.all()) if latest else []
        groups = []
        for step_kind, unit in order:
            group = _group(step_kind, unit, [s for s in steps if s.kind == step_kind], shape, latest, now)
            if group.total == 0 and not group.rows and step_kind == K.MOBILE_PACKAGE:
                continue  # no mobile application in the plan: no line for it
            if step_kind in ONLY_WHEN_DONE and not group.rows:
                continue
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
                if group.status == StepState.RUNNING:
                    return view, group
            return view, view.groups[0]
    return None
