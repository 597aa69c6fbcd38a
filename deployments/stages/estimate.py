"""How long Continue should take, against the time left in the target's deployment window."""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections.abc import Sequence

from django.utils import timezone

from core.durations import seconds_label
from deployments.models import DeploymentPlan, GeneratedSql, StageKind, Step, StepKind
from deployments.state.machine import StepState


@dataclasses.dataclass(frozen=True)
class ContinueEstimate:
    sql_seconds: float
    switch_seconds_per_frontend: float
    frontends: int
    history: int  # how many past Continues on the target the switch time comes from
    window: tuple[dt.datetime, dt.datetime] | None
    now: dt.datetime

    DEFAULT_SWITCH_S = 5.0  # no Continue ran there yet: a cautious guess per front-end

    @property
    def switch_seconds(self) -> float:
        return self.switch_seconds_per_frontend * self.frontends

    @property
    def seconds(self) -> float:
        return self.sql_seconds + self.switch_seconds

    @property
    def label(self) -> str:
        return seconds_label(self.seconds)

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
        left = self.window_seconds_left
        return None if left is None else self.seconds <= left

    @property
    def share_of_window(self) -> int:
        left = self.window_seconds_left
        return min(100, int(100 * self.seconds / left)) if left else 100


def continue_estimate(
    plan: DeploymentPlan, generated: Sequence[GeneratedSql], frontends: int, *, now: dt.datetime | None = None
) -> ContinueEstimate:
    """SQL from the rehearsal timings of this plan, the switch from past Continues on the target
    (two queries: the generated SQL is passed in)."""
    now = now or timezone.now()
    sql_seconds = sum(g.rehearsal_seconds or 0.0 for g in generated)
    past = list(
        Step.objects.filter(
            kind=StepKind.SWITCH,
            status=StepState.DONE,
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
        sql_seconds=sql_seconds,
        switch_seconds_per_frontend=per_frontend,
        frontends=frontends,
        history=len({stage_id for stage_id, _, _ in past}),
        window=plan.target.window_at(now),
        now=now,
    )
