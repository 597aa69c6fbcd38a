"""Continue's switch step: all or nothing across the front-ends of an environment.

Each agent points each application's ``current`` link at its new release with one rename(2),
then checks its health URL. If any front-end fails, does not answer in time or fails its health
check, the ones that switched are put back, so the environment ends fully on the old versions or
fully on the new ones.

A switch is named by a ``switch_id``: each agent keeps a journal of it, so a revert knows what to
put back even if the console never heard the switch's answer, and a switch message that arrives
after its revert (an agent that was stopped, then started) refuses to run. Switch messages also
expire when the console stops waiting for them.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from agent.releases import release_name
from deployments.models import ApplicationVersion
from deployments.steps import StepFailed, StepLog
from environments.agents import AgentCall, send, wait
from environments.models import Environment, FrontEnd

SWITCH_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_S = 10.0
# How long a revert keeps trying to reach the broker (a Redis restart, a dropped connection).
REVERT_SEND_RETRY_S = 30.0
# How long sending a switch waits for the broker (nothing switched yet at that point).
SWITCH_SEND_RETRY_S = 10.0


@dataclasses.dataclass(frozen=True)
class FrontEndSwitch:
    """What happened on one front-end. ``outcome``: switched, failed, timed_out, reverted,
    revert_failed or revert_queued (no answer: the revert waits in its queue)."""

    frontend: str
    outcome: str
    before: dict[str, str | None]
    after: dict[str, str]
    seconds: float | None
    health_seconds: float | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True)
class SwitchResult:
    switch_id: str
    frontends: list[FrontEndSwitch]
    seconds: float

    def as_detail(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def enabled_frontends(environment: Environment) -> list[FrontEnd]:
    return list(environment.frontends.filter(enabled=True).order_by("name"))


def releases_for(versions: Iterable[ApplicationVersion]) -> dict[str, str]:
    """``{application name: release folder}`` for compiled versions, as the agents name them."""
    return {v.application.name: release_name(v.version, v.binary_sha256) for v in versions}


def _settings_of(settings_links: Mapping[str, str | None] | None, links: Mapping[str, str | None]) -> dict:
    """The settings documents of the applications this front-end switches (a zone's applications
    only on its front-ends)."""
    mine = {app: digest for app, digest in (settings_links or {}).items() if app in links}
    return {"settings_links": mine} if mine else {}


def switch_frontends(
    *,
    frontends: Sequence[FrontEnd],
    releases: Mapping[str, str | None],
    log: StepLog,
    switch_id: str | None = None,
    timeout_s: float = SWITCH_TIMEOUT_S,
    health_timeout_s: float = HEALTH_TIMEOUT_S,
    settings_links: Mapping[str, str | None] | None = None,
    only: Mapping[str, Collection[str]] | None = None,
) -> SwitchResult:
    """Switch every enabled front-end in ``frontends`` to ``releases``; all or nothing.

    ``only``: ``{application: front-end names}`` for applications deployed to a zone: their links
    change on those front-ends only; a front-end with no link to change is not called.

    Returns per front-end what its links pointed to before, with timings. On any failure the
    switched front-ends are reverted and StepFailed says which front-end failed and how; its
    ``detail["switch"]`` holds the SwitchResult. ``settings_links`` (``{application: digest}``)
    points applications at settings documents already on every front-end, in the same switch.
    """
    started = time.monotonic()
    switch_id = switch_id or uuid.uuid4().hex
    frontends = [fe for fe in frontends if fe.enabled]
    if not frontends:
        raise StepFailed("The environment has no enabled front-end to switch.")
    if not releases:
        raise StepFailed("Nothing to switch: the plan deploys no web release.")
    links = dict(releases)
    only = only or {}

    def links_of(fe: FrontEnd) -> dict[str, str | None]:
        return {app: rel for app, rel in links.items() if app not in only or fe.name in only[app]}

    frontends = [fe for fe in frontends if links_of(fe)]
    if not frontends:
        raise StepFailed("No enabled front-end of the deployment zones to switch.")
    log.info(f"Switching {len(frontends)} front-end(s): {_links(links)}.")
    log.progress(0, len(frontends))
    done = 0

    def on_answer(call: AgentCall) -> None:
        nonlocal done
        done += 1
        log.progress(done, len(frontends))

    calls = [
        _send_retrying(
            AgentCall(
                fe,
                "agent.switch",
                {
                    "releases_root": fe.releases_root,
                    "switch_id": switch_id,
                    "links": links_of(fe),
                    "health_url": fe.health_url,
                    "health_timeout_s": min(health_timeout_s, timeout_s * 0.8),
                    **_settings_of(settings_links, links_of(fe)),
                },
            ),
            # A switch that reaches an agent after the console gave up must not run.
            expires_in_s=timeout_s,
            # A broker restarting for a moment is waited for rather than failing the switch.
            retry_s=SWITCH_SEND_RETRY_S,
        )
        for fe in frontends
    ]
    _wait_through_blips(calls, timeout_s=timeout_s, on_answer=on_answer)

    if all(call.ok for call in calls):
        outcomes = [_outcome(call, "switched") for call in calls]
        slowest = max(call.seconds or 0 for call in calls)
        log.info(f"Switched {len(calls)} front-end(s) in {slowest * 1000:.1f} ms.")
        return SwitchResult(switch_id=switch_id, frontends=outcomes, seconds=time.monotonic() - started)

    failed = [call for call in calls if not call.ok]
    for call in failed:
        log.error(f"Switch failed on {call.problem()}.")
    log.warning("Putting every front-end back on the versions it ran before.")
    outcomes, revert_problems = _revert(calls, switch_id=switch_id, log=log, timeout_s=timeout_s)
    result = SwitchResult(switch_id=switch_id, frontends=outcomes, seconds=time.monotonic() - started)
    first = failed[0].problem()
    if revert_problems:
        raise StepFailed(
            f"Switch failed on {first}, and the revert failed on {'; '.join(revert_problems)}: "
            "the front-ends of this environment may run different versions. Retry Continue or fix them by hand.",
            detail={"switch": result.as_detail()},
        )
    raise StepFailed(
        f"Switch failed on {first}. Every front-end was put back on the versions it ran before.",
        detail={"switch": result.as_detail()},
    )


def revert_switch(
    *, frontends: Sequence[FrontEnd], switch_id: str, log: StepLog, timeout_s: float = SWITCH_TIMEOUT_S
) -> list[FrontEndSwitch]:
    """Put back what the switch ``switch_id`` replaced on each front-end (after a successful switch
    whose follow-up failed, or to retry a revert). Raises StepFailed naming the front-ends it could
    not put back."""
    calls = [
        _send_revert(AgentCall(fe, "agent.revert", {"releases_root": fe.releases_root, "switch_id": switch_id}))
        for fe in frontends
        if fe.enabled
    ]
    try:
        wait(calls, timeout_s=timeout_s)
    except Exception as exc:
        _unanswered(calls, exc)
    outcomes = []
    for call in calls:
        restored = (call.answer or {}).get("restored") or {}
        outcomes.append(
            FrontEndSwitch(
                frontend=call.frontend.name,
                outcome="reverted" if call.ok else "revert_failed",
                before={},
                after=dict(restored),
                seconds=call.seconds,
                error=call.failure(),
            )
        )
        if call.ok:
            log.info(f"Front-end {call.frontend.name} put back: {_links(restored) or 'nothing to put back'}.")
        else:
            log.error(f"Could not put back {call.problem()}.")
    problems = [call.problem() for call in calls if not call.ok]
    if problems:
        raise StepFailed(
            f"Revert failed on {'; '.join(problems)}.", detail={"frontends": [dataclasses.asdict(o) for o in outcomes]}
        )
    return outcomes


def _revert(
    calls: Sequence[AgentCall], *, switch_id: str, log: StepLog, timeout_s: float
) -> tuple[list[FrontEndSwitch], list[str]]:
    """Send a revert to every front-end that was sent the switch, answered or not.

    A front-end that answered is alive: wait for its revert. One that did not answer may be
    stopped: its revert waits in its queue (never expires), so if it later runs the switch anyway,
    the revert right behind it puts the links back.
    """
    reverts = [
        _send_revert(
            AgentCall(
                call.frontend, "agent.revert", {"releases_root": call.frontend.releases_root, "switch_id": switch_id}
            )
        )
        for call in calls
    ]
    answered = [revert for call, revert in zip(calls, reverts, strict=True) if call.answer is not None]
    try:
        wait(answered, timeout_s=timeout_s)
    except Exception as exc:
        _unanswered(answered, exc)
    outcomes: list[FrontEndSwitch] = []
    problems: list[str] = []
    for call, revert in zip(calls, reverts, strict=True):
        if call.result is None:
            # The switch never left the console for this front-end: nothing to put back there.
            outcomes.append(_outcome(call, "failed"))
            if revert.result is None:
                log.warning(f"Front-end {call.frontend.name} was never sent the switch ({call.failure()}).")
        elif call.answer is None and revert.result is None:
            # Sent the switch, maybe ran it, and no revert could be queued behind it.
            outcomes.append(_outcome(call, "revert_failed", error=revert.failure()))
            problems.append(revert.problem())
            log.error(f"Could not put back {revert.problem()}.")
        elif call.answer is None:
            outcomes.append(_outcome(call, "revert_queued"))
            log.warning(
                f"Front-end {call.frontend.name} did not answer the switch; a revert waits in its queue "
                "in case the switch runs late."
            )
        elif revert.ok:
            # Switched then put back, or never switched (its switch failed, or timed out and was undone).
            outcomes.append(_outcome(call, "reverted" if call.ok else "timed_out" if call.timed_out else "failed"))
            restored = (revert.answer or {}).get("restored") or {}
            if restored:
                log.info(f"Front-end {call.frontend.name} put back: {_links(restored)}.")
        else:
            outcomes.append(_outcome(call, "revert_failed", error=revert.failure()))
            problems.append(revert.problem())
            log.error(f"Could not put back {revert.problem()}.")
    return outcomes, problems


def _send_safely(call: AgentCall, *, expires_in_s: float | None = None) -> AgentCall:
    """``send``, where any failure to send (the broker unreachable, a key that cannot be read) is
    this front-end's failure, never an exception that skips the all-or-nothing revert."""
    try:
        return send(call, expires_in_s=expires_in_s)
    except Exception as exc:
        call.result = None
        call.error = f"could not be sent {call.task} ({_sentence(exc)})"
        return call


def _send_revert(call: AgentCall) -> AgentCall:
    """A revert is sent without expiry and retried while the broker cannot be reached: a Redis
    restart must not leave a front-end switched alone."""
    return _send_retrying(call, retry_s=REVERT_SEND_RETRY_S)


def _send_retrying(call: AgentCall, *, retry_s: float, expires_in_s: float | None = None) -> AgentCall:
    """``_send_safely``, tried again every second for ``retry_s`` while the broker cannot be reached
    (a key that cannot be read is not retried: waiting does not make it readable)."""
    try:
        retry = bool(call.frontend.agent_key())
    except Exception:
        retry = False
    deadline = time.monotonic() + retry_s
    while True:
        _send_safely(call, expires_in_s=expires_in_s)
        if call.result is not None or not retry or time.monotonic() >= deadline:
            return call
        time.sleep(1.0)


def _wait_through_blips(calls: Sequence[AgentCall], *, timeout_s: float, on_answer: Any = None) -> None:
    """``wait``, reading on through a broker that drops for a moment (its append-only file keeps the
    answers); past the deadline, or on anything else, the answers not in count as failures."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            wait(calls, timeout_s=max(0.0, deadline - time.monotonic()), on_answer=on_answer)
            return
        except Exception as exc:
            if time.monotonic() >= deadline:
                _unanswered(calls, exc)
                return
            time.sleep(0.5)


def _unanswered(calls: Sequence[AgentCall], exc: BaseException) -> None:
    for call in calls:
        if call.answer is None and not call.error:
            call.error = f"its answer could not be read ({_sentence(exc)})"


def _sentence(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


def _outcome(call: AgentCall, outcome: str, *, error: str = "") -> FrontEndSwitch:
    answer = call.answer or {}
    health = answer.get("health") or {}
    return FrontEndSwitch(
        frontend=call.frontend.name,
        outcome=outcome,
        before=dict(answer.get("before") or {}),
        after=dict(answer.get("after") or {}),
        seconds=call.seconds,
        health_seconds=health.get("seconds"),
        error=error or call.failure(),
    )


def _links(links: Mapping[str, str | None]) -> str:
    return ", ".join(f"{app} → {release or 'nothing'}" for app, release in sorted(links.items()))
