"""Whether a status page is out of date, in one small query before anything is rendered."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from django.db import connection

from deployments.state import machine
from deployments.state.machine import StepState


@dataclasses.dataclass(frozen=True)
class PlanPulse:
    """What decides whether a status page is out of date, read in one small query before anything
    is rendered: the plan's status and marks, its log counter, and a digest of its stages."""

    plan_id: int
    key: str
    target_id: int
    state: str
    log_seq: int
    point_of_no_return: bool
    stages: str  # digest of the state, the marks and every stage and step; not the log

    @property
    def is_final(self) -> bool:
        return machine.is_final(self.state)

    @property
    def is_waiting(self) -> bool:
        return machine.is_waiting(self.state)


# The plan's row and, in the same statement, an aggregate of its stages and steps (status,
# progress, ends): a poll learns whether anything changed without loading or rendering a thing.
_PULSE_SQL = """
select p.id, p.key, p.target_id, p.state, p.log_seq,
       p.point_of_no_return_at, p.prepared_at, p.finished_at,
       agg.*
  from deployments_deploymentplan p
  cross join lateral (
    select count(distinct s.id),
           coalesce(string_agg(distinct s.id::text || s.status, ','), ''),
           count(st.id), coalesce(sum(st.done), 0), coalesce(sum(st.total), 0),
           count(st.finished_at), coalesce(max(st.id), 0),
           coalesce(sum(case when st.status = %s then 1 else 0 end), 0)
      from deployments_stage s left join deployments_step st on st.stage_id = s.id
     where s.plan_id = p.id
  ) agg
 where p.{column} = %s
"""


def plan_pulse(*, pk: int | None = None, key: Any = None) -> PlanPulse | None:
    """The pulse of the plan with this id (or key); None when there is no such plan. One query."""
    column, value = ("id", pk) if pk is not None else ("key", str(key))
    with connection.cursor() as cursor:
        cursor.execute(_PULSE_SQL.format(column=column), [StepState.FAILED, value])
        row = cursor.fetchone()
    if row is None:
        return None
    plan_id, plan_key, target_id, state, log_seq, ponr, prepared_at, finished_at, *steps = row
    parts = [state, str(ponr), str(prepared_at), str(finished_at), *map(str, steps)]
    return PlanPulse(
        plan_id=plan_id,
        key=str(plan_key),
        target_id=target_id,
        state=state,
        log_seq=log_seq,
        point_of_no_return=ponr is not None,
        stages=hashlib.sha1("|".join(parts).encode()).hexdigest()[:16],
    )
