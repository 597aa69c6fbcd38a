"""The only writers of a plan's state and of a stage's status.

``move_plan()`` performs one move of the plan map with a compare-and-set update
(``filter(pk=…, state__in=expected).update(…)``: one row, or somebody else moved the plan first)
and writes the Transition row in the same transaction; listeners registered at app start
(notifications, …) hear about it once the move is committed. The stage functions below do the
same for a stage's status: claim, finish, cancel, and declare a dead worker's stage lost.

Fencing: code that runs for a stage attempt does so inside ``attempt(stage)``; every plan move it
makes, and every ``check_attempt()`` before a write elsewhere (the target's SQL commit, the switch,
the running versions), raises StaleAttempt once the attempt was declared lost or a newer attempt of
the stage exists.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.actors import Actor
from core.refusals import Conflict, Refusal
from deployments.models import DeploymentPlan, Stage, Transition
from deployments.state import machine
from deployments.state.machine import StageState

logger = logging.getLogger(__name__)


class TransitionLost(Conflict):
    """The plan was not in an expected state: another click, user, pipeline or worker moved it first."""

    def __init__(self, plan_id: int, expected: Iterable[str], wanted: str) -> None:
        self.current = DeploymentPlan.objects.filter(pk=plan_id).values_list("state", flat=True).first()
        wanted_label = machine.label(wanted).lower()
        now = machine.label(self.current).lower() if self.current else "gone"
        super().__init__(f"The plan is {now}: it cannot become {wanted_label} from there.")
        self.expected = frozenset(expected)


class TargetHeld(Refusal):
    """Another plan holds the target environment (or as many plans as it allows at once)."""

    def __init__(self, holder: DeploymentPlan | None, *, shared: set[str] | None = None) -> None:
        self.holder = holder
        why = f" (both deploy or depend on {', '.join(sorted(shared))})" if shared else ""
        super().__init__(
            f"{holder_label(holder)} holds the target environment{why}; it must be continued, aborted or expire first."
        )


def holder_label(holder: DeploymentPlan | None) -> str:
    if holder is None:
        return "Another plan"
    who = holder.started_by.username if holder.started_by else "unknown"
    return f"Plan {holder.key} ({holder.state_label.lower()}, by {who})"


def holders_of(environment_id: int, *, excluding: int | None = None) -> list[DeploymentPlan]:
    """The plans holding the environment, oldest start first."""
    qs = DeploymentPlan.objects.select_related("started_by").filter(target_id=environment_id, state__in=machine.HOLDING)
    if excluding is not None:
        qs = qs.exclude(pk=excluding)
    return list(qs.order_by("started_at", "id"))


def holder_of(environment_id: int, *, excluding: int | None = None) -> DeploymentPlan | None:
    holders = holders_of(environment_id, excluding=excluding)
    return holders[0] if holders else None


def footprint(plan: DeploymentPlan) -> set[str]:
    """The applications a plan deploys or undeploys, and those its versions depend on: two plans
    run side by side only when their footprints do not meet."""
    names: set[str] = set()
    for op in plan.operations.select_related("application", "version"):
        names.add(op.application.name)
        if op.version is not None:
            names.update(name for name, _spec in op.version.dependencies)
    return names


def blocking_holder(plan: DeploymentPlan) -> TargetHeld | None:
    """Why ``plan`` cannot take its target now (a TargetHeld to raise), or None when it may.

    Call it holding the lock of the target's row, as every start does: the answer stays true
    until that transaction ends. A holder that shares an application or a dependency blocks;
    otherwise the target's limit of plans at once does.
    """
    holders = holders_of(plan.target_id, excluding=plan.pk)
    if not holders:
        return None
    mine = footprint(plan)
    for holder in holders:
        shared = footprint(holder) & mine
        if shared:
            return TargetHeld(holder, shared=shared)
    if len(holders) >= max(1, plan.target.concurrent_plans):
        return TargetHeld(holders[0])
    return None


class StaleAttempt(Conflict):
    """A write of a stage attempt that is no longer the plan's live one: the reaper declared it lost
    (its lease was gone) and a newer attempt may run. Nothing of it is written."""

    def __init__(self, stage_id: int) -> None:
        self.stage_id = stage_id
        super().__init__(
            "This attempt of the stage was declared lost and a newer attempt took over: it changes nothing more."
        )


# --- fencing ------------------------------------------------------------------------------------

# The stage attempt the current code runs for (set by the stage runner): every plan move made under
# it, and every check_attempt(), is refused once the attempt is no longer its stage's live one.
_attempt: contextvars.ContextVar[int | None] = contextvars.ContextVar("stage_attempt", default=None)


@contextlib.contextmanager
def attempt(stage: Stage) -> Iterator[None]:
    """Run the block as ``stage``'s attempt: its plan moves and checked writes are fenced."""
    token = _attempt.set(stage.pk)
    try:
        yield
    finally:
        _attempt.reset(token)


@contextlib.contextmanager
def ended_attempt() -> Iterator[None]:
    """After the attempt ended its own stage (finish_stage said yes, so it was the live one): the
    plan's follow-up move is no longer fenced by a stage that is not running any more."""
    token = _attempt.set(None)
    try:
        yield
    finally:
        _attempt.reset(token)


def check_attempt(stage_id: int | None = None) -> None:
    """Raise StaleAttempt unless the attempt (by default the one the code runs for) is still its
    plan's live one: running, and no newer attempt of the plan queued or running.

    Inside the caller's transaction the stage's row stays locked until it ends, so the reaper cannot
    declare the attempt lost between this check and the caller's write (it waits for the commit).
    """
    stage_id = stage_id if stage_id is not None else _attempt.get()
    if stage_id is None:
        return
    with transaction.atomic():
        status = Stage.objects.select_for_update().filter(pk=stage_id).values_list("status", flat=True).first()
        if status != StageState.RUNNING or _newer_attempt(stage_id).filter(status__in=machine.STAGE_ACTIVE).exists():
            raise StaleAttempt(stage_id)


def _newer_attempt(stage_id: int):
    """Later attempts of the same stage (same plan, same kind) than ``stage_id``."""
    stage = Stage.objects.filter(pk=stage_id).values("plan_id", "kind").first() or {"plan_id": None, "kind": ""}
    return Stage.objects.filter(plan_id=stage["plan_id"], kind=stage["kind"], pk__gt=stage_id)


# --- listeners ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlanMove:
    plan_id: int
    source: str
    to: str
    actor: Actor
    reason: str


PlanListener = Callable[[PlanMove], None]
_listeners: list[PlanListener] = []


def on_plan_move(listener: PlanListener) -> PlanListener:
    """Register ``listener`` (at app start): it is called after each committed move of a plan.
    A listener's failure is logged and never reaches the code that moved the plan."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def _tell_listeners(move: PlanMove) -> None:
    # The move is committed: what a listener does in reply (start the next queued plan, say) is not
    # a write of the stage attempt that made the move, and is not fenced by it.
    with ended_attempt():
        for listener in list(_listeners):
            try:
                listener(move)
            except Exception:
                logger.exception("listener %r failed on the move of plan %s to %s", listener, move.plan_id, move.to)


# --- plans --------------------------------------------------------------------------------------


def move_plan(
    plan: DeploymentPlan,
    *,
    to: str,
    expected: Iterable[str],
    actor: Actor,
    reason: str = "",
    extra_filter: Q | None = None,
    fields: dict[str, Any] | None = None,
) -> DeploymentPlan:
    """Move ``plan`` from one of ``expected`` to ``to``; TransitionLost when it was not there.

    ``extra_filter`` narrows the compare-and-set; ``fields`` are written in the same UPDATE. Whether
    a plan may take its target is decided before, under the lock of the target's row
    (``blocking_holder``). The in-memory ``plan`` is refreshed.
    """
    expected_set = frozenset(expected)
    for source in expected_set:
        if not machine.plan_may_move(source, to):
            raise ValueError(f"{source} -> {to} is not a move of the plan state map")
    now = timezone.now()
    values: dict[str, Any] = {"state": to, **(fields or {})}
    if machine.is_final(to):
        values.setdefault("finished_at", now)
    with transaction.atomic():
        check_attempt()
        current = DeploymentPlan.objects.select_for_update().filter(pk=plan.pk).values_list("state", flat=True).first()
        qs = DeploymentPlan.objects.filter(pk=plan.pk, state__in=expected_set)
        if extra_filter is not None:
            qs = qs.filter(extra_filter)
        moved = qs.update(**values)
        if moved != 1:
            raise TransitionLost(plan.pk, expected_set, to)
        Transition.objects.create(
            plan_id=plan.pk,
            from_state=current or "",
            to_state=to,
            actor=actor.user,
            actor_name=actor.name,
            reason=reason,
        )
        move = PlanMove(plan_id=plan.pk, source=current or "", to=to, actor=actor, reason=reason)
        transaction.on_commit(lambda: _tell_listeners(move))
    plan.refresh_from_db()
    return plan


# --- stages -------------------------------------------------------------------------------------


def _move_stage(stage_id: int, *, expected: Iterable[str], to: str, extra: Q | None = None, **fields: Any) -> bool:
    expected_set = frozenset(expected)
    for source in expected_set:
        if not machine.stage_may_move(source, to):
            raise ValueError(f"{source} -> {to} is not a move of the stage state map")
    qs = Stage.objects.filter(pk=stage_id, status__in=expected_set)
    if extra is not None:
        qs = qs.filter(extra)
    return qs.update(status=to, **fields) == 1


def claim_stage(stage_id: int, *, task_id: str = "", worker: str = "", lease_pid: int | None = None) -> Stage | None:
    """Mark a queued stage running; None when it was already claimed (a redelivered message), when
    a newer attempt of its plan exists, or when another stage of the plan runs (the database's
    partial unique index: one running stage per plan).

    ``lease_pid``: the database backend whose session holds the attempt's lease (for the reaper's
    log and for people who look at ``pg_stat_activity``)."""
    now = timezone.now()
    plan_id = Stage.objects.filter(pk=stage_id).values_list("plan_id", flat=True).first()
    if plan_id is None:
        return None
    if _newer_attempt(stage_id).exists():
        return None
    try:
        with transaction.atomic():
            claimed = _move_stage(
                stage_id,
                expected={StageState.QUEUED},
                to=StageState.RUNNING,
                started_at=now,
                heartbeat_at=now,
                task_id=task_id[:64],
                worker=worker[:200],
                lease_pid=lease_pid,
            )
    except IntegrityError:
        return None
    if not claimed:
        return None
    return Stage.objects.select_related("plan", "plan__target", "plan__source", "requested_by").get(pk=stage_id)


def finish_stage(stage: Stage, to: str, *, explanation: str = "", traceback: str = "") -> bool:
    """End a running stage: succeeded, failed (a sentence for people), errored (a traceback for
    developers) or cancelled. False when it was no longer running (the reaper declared it lost)."""
    if not machine.stage_may_move(StageState.RUNNING, to):
        raise ValueError(f"a running stage cannot end {to}")
    return _move_stage(
        stage.pk,
        expected={StageState.RUNNING},
        to=to,
        finished_at=timezone.now(),
        explanation=explanation,
        traceback=traceback,
    )


def complete_stage(
    stage: Stage,
    plan: DeploymentPlan,
    *,
    to: str,
    expected: Iterable[str],
    actor: Actor,
    reason: str = "",
    fields: dict[str, Any] | None = None,
) -> DeploymentPlan:
    """A stage that succeeded and the plan's move it ends with, in one transaction: nobody ever
    sees a finished plan whose stage still runs, or a succeeded stage whose plan did not move."""
    with transaction.atomic():
        check_attempt()
        if not finish_stage(stage, StageState.SUCCEEDED):
            raise TransitionLost(plan.pk, expected, to)
        # Fenced just above, the stage's row locked until this transaction ends; it is no longer
        # running now, so the plan's move is not fenced a second time.
        with ended_attempt():
            return move_plan(plan, to=to, expected=expected, actor=actor, reason=reason, fields=fields)


def cancel_queued_stages(plan: DeploymentPlan, *, explanation: str) -> int:
    """Cancel the plan's stages that no worker took yet (an Abort before they started)."""
    return Stage.objects.filter(plan=plan, status=StageState.QUEUED).update(
        status=StageState.CANCELLED, finished_at=timezone.now(), explanation=explanation
    )


def has_running_stage(plan: DeploymentPlan) -> bool:
    return Stage.objects.filter(plan=plan, status=StageState.RUNNING).exists()


def lose_stage(stage: Stage, *, stale_before: dt.datetime, explanation: str) -> bool:
    """The reaper's verdict on a running stage whose heartbeat stopped: errored, its worker gone.
    False when it beat again or ended meanwhile."""
    return _move_stage(
        stage.pk,
        expected={StageState.RUNNING},
        to=StageState.ERRORED,
        extra=Q(heartbeat_at__lt=stale_before),
        finished_at=timezone.now(),
        explanation=explanation,
    )


def stale_stages(*, stale_before: dt.datetime):
    return Stage.objects.select_related("plan", "plan__target", "requested_by").filter(
        status=StageState.RUNNING, heartbeat_at__lt=stale_before
    )


def queued_before(when: dt.datetime):
    return Stage.objects.filter(status=StageState.QUEUED, queued_at__lt=when)
