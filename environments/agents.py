"""Talking to front-end agents: send a task to a front-end's own queue, wait for the answers.

Waiting polls each result with a small interval rather than ``group(...).get()``, whose Redis
result backend sleeps at least 0.5 s whatever the group's size: a switch across 8 front-ends takes
milliseconds and the window is short.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from celery import current_app as app  # the console's app, configured by the project
from celery import states
from celery.result import AsyncResult
from django.utils import timezone

from agent import signing
from environments.models import Environment, FrontEnd

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.002


@dataclasses.dataclass
class AgentCall:
    """One task sent to one front-end's agent, and what came back."""

    frontend: FrontEnd
    task: str
    kwargs: dict[str, Any]
    result: AsyncResult | None = None
    sent_at: float = 0.0
    answered_at: float | None = None
    answer: dict[str, Any] | None = None
    error: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.answer is not None and bool(self.answer.get("ok"))

    @property
    def seconds(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.sent_at

    def problem(self) -> str:
        """A sentence naming the front-end and what went wrong ("" when it went well)."""
        failure = self.failure()
        if not failure:
            return ""
        if self.timed_out:
            return f"front-end {self.frontend.name} {failure}"
        return f"front-end {self.frontend.name}: {failure}"

    def failure(self) -> str:
        """What went wrong, as the end of a sentence that starts with the front-end's name."""
        if self.timed_out:
            return "did not answer in time (is its agent running?)"
        if self.error:
            return self.error
        if self.answer is not None and not self.answer.get("ok"):
            return str(self.answer.get("error") or "failed")
        return ""


def send(call: AgentCall, *, expires_in_s: float | None = None) -> AgentCall:
    """Send ``call`` to its front-end's queue, signed with that front-end's key (agent.signing). With
    ``expires_in_s``, an agent that receives it later (it was stopped, it is busy) discards it instead
    of running it after the console gave up; without, the signature still expires after a week."""
    call.sent_at = time.monotonic()
    key = call.frontend.agent_key()
    if not key:
        call.error = "has no agent key: generate one on its page and give it to its agent"
        return call
    task_id = str(uuid.uuid4())
    validity = signing.DEFAULT_VALIDITY_S if expires_in_s is None else max(expires_in_s, signing.MIN_VALIDITY_S)
    auth = signing.sign(
        key=key,
        task=call.task,
        task_id=task_id,
        queue=call.frontend.queue,
        kwargs=call.kwargs,
        expires_at=int(time.time() + validity) + 1,
    )
    call.result = app.send_task(
        call.task,
        kwargs=call.kwargs,
        queue=call.frontend.queue,
        expires=expires_in_s,
        ignore_result=False,
        task_id=task_id,
        headers={signing.HEADER: auth},
    )
    return call


def wait(calls: Sequence[AgentCall], *, timeout_s: float, on_answer: Any = None) -> Sequence[AgentCall]:
    """Wait until every call answered or ``timeout_s`` passed; the late ones are marked timed out."""
    deadline = time.monotonic() + timeout_s
    pending = [c for c in calls if c.result is not None and c.answered_at is None]
    while pending:
        ready = _ready_among(pending)
        for call in ready:
            _collect(call)
            if on_answer is not None:
                on_answer(call)
        pending = [c for c in pending if c not in ready]
        if not pending:
            break
        if time.monotonic() >= deadline:
            for call in pending:
                call.timed_out = True
            break
        _pause(POLL_INTERVAL_S)
    return calls


def _pause(seconds: float) -> None:
    """Sleep, but read the result channel meanwhile when the backend has one (Redis pub/sub).

    send_task subscribes the console to each task's result channel; reading it here wakes us as
    soon as an answer is published and keeps unread messages from piling up on the connection of
    a long-lived stage worker.
    """
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is None:
        time.sleep(seconds)
        return
    consumer.drain_events(timeout=seconds)


def _ready_among(pending: Sequence[AgentCall]) -> list[AgentCall]:
    """The calls whose answer is in, asked with one MGET for all of them (one round trip to Redis
    however many front-ends) when the result backend is a key-value store."""
    backend = app.backend
    if not hasattr(backend, "mget"):
        return [call for call in pending if call.result is not None and call.result.ready()]
    values = backend.mget([backend.get_key_for_task(call.result.id) for call in pending if call.result is not None])
    ready = []
    for call, value in zip(pending, values, strict=True):
        if value is None or call.result is None:
            continue
        meta = backend.decode_result(value)
        if meta.get("status") in states.READY_STATES:
            call.result._maybe_set_cache(meta)
            ready.append(call)
    return ready


def _collect(call: AgentCall) -> None:
    assert call.result is not None
    call.answered_at = time.monotonic()
    if call.result.successful():
        try:
            call.answer = signing.verify_answer(
                key=call.frontend.agent_key(), task_id=call.result.id, answer=call.result.result
            )
        except signing.SignatureRefused as exc:
            # Not its agent's answer: written into the result backend by someone else, or sent by an
            # agent that has another key. Believe nothing of it.
            logger.warning("front-end %s: %s (task %s)", call.frontend, exc.reason, call.task)
            call.error = exc.reason
    else:
        # A bug in the agent (not a known refusal): keep its message, the traceback stays in its log.
        call.error = f"its agent failed: {call.result.result!r}"
    call.result.forget()


def call_each(
    frontends: Iterable[FrontEnd], task: str, *, kwargs_for: Any, timeout_s: float, expires: bool = True
) -> list[AgentCall]:
    """Send ``task`` to every front-end (``kwargs_for(frontend)`` gives its arguments) and wait."""
    calls = [send(AgentCall(fe, task, kwargs_for(fe)), expires_in_s=timeout_s if expires else None) for fe in frontends]
    wait(calls, timeout_s=timeout_s)
    return calls


# --- what each front-end reports -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FrontEndReport:
    frontend: str
    answered: bool
    seconds: float | None
    report: dict[str, Any]
    problem: str


def refresh_reports(*, environment: Environment | None = None, timeout_s: float = 5.0) -> list[FrontEndReport]:
    """Ask every enabled front-end's agent for its report; record when it answered and what it said.

    For a periodic beat task: the environment page shows "answered N minutes ago", and Continue
    can check that every front-end is there before it starts.
    """
    frontends = FrontEnd.objects.filter(enabled=True).select_related("environment")
    if environment is not None:
        frontends = frontends.filter(environment=environment)
    calls = call_each(
        list(frontends), "agent.report", kwargs_for=lambda fe: {"releases_root": fe.releases_root}, timeout_s=timeout_s
    )
    now = timezone.now()
    reports = []
    for call in calls:
        fe = call.frontend
        if call.answer is not None:
            FrontEnd.objects.filter(pk=fe.pk).update(last_seen_at=now, last_report=call.answer)
            fe.last_seen_at, fe.last_report = now, call.answer
        reports.append(
            FrontEndReport(
                frontend=str(fe),
                answered=call.answer is not None,
                seconds=call.seconds,
                report=call.answer or {},
                problem=call.failure(),
            )
        )
        if call.failure():
            logger.warning("front-end %s: %s", fe, call.failure())
    return reports
