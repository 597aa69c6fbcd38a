"""How long Continue should take, against the time left in the target's deployment window."""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from core.durations import seconds_label
from deployments.models import DeploymentPlan, GeneratedSql, StageKind, Step, StepKind
from deployments.state.machine import StepState
from deployments.steps.sql_estimate import basis_sentence


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
                bases.append(basis_sentence(totals["throughputs"]))
        else:  # prepared before estimates existed: the rehearsal's timing, as then
            sql_typical += g.rehearsal_seconds or 0.0
            sql_pessimistic += g.rehearsal_seconds or 0.0
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
