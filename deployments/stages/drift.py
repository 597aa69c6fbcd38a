"""Reconciliation: what the front-ends run against what the console recorded.

Each agent reports, per application, the release its ``current`` link points to. The console
compares that with the environment's running versions (the release folder each one stands for).
A front-end that differs has drifted: an agent killed after it switched, whose revert was lost with
a Redis that forgot it; a link changed by hand. A drifted front-end is shown on the board and the
environment page (host, recorded, actual), notified once when it starts, blocks Prepare and
Continue on its environment with a sentence that says why, and can be put back: switched, alone,
to the recorded releases, by a user with ``manage`` on the environment, audited.

While a Continue runs on an environment its front-ends legitimately move: they are not compared
then (the last verdict stays).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.utils import timezone

from core import audit
from core.actors import Actor
from core.refusals import Conflict, Refusal
from deployments.models import DeploymentPlan, PlanOperation, RunningVersion
from deployments.state import machine
from deployments.steps import ListLog, StepFailed
from deployments.steps.switch import releases_for, switch_frontends
from environments import access
from environments.agents import refresh_reports
from environments.models import AccessLevel, Environment, FrontEnd

logger = logging.getLogger(__name__)
SWITCHING = machine.SWITCHING


class Drifted(Refusal):
    """Prepare or Continue on an environment with a drifted front-end."""


def recorded_releases(environment: Environment) -> dict[str, str]:
    """``{application: release folder}`` of the environment's running versions."""
    running = RunningVersion.objects.filter(environment=environment).select_related("version__application")
    return releases_for(r.version for r in running)


def zoned_applications(environment: Environment) -> dict[str, set[str]]:
    """``{application: front-end names}`` for the running versions a plan deployed to a deployment
    zone: those front-ends run the recorded release; the others keep whatever they had, and are
    not compared for that application."""
    zoned: dict[str, set[str]] = {}
    running = RunningVersion.objects.filter(environment=environment, plan__isnull=False).values_list(
        "application_id", "plan_id"
    )
    pairs = {(app_id, plan_id) for app_id, plan_id in running}
    if not pairs:
        return zoned
    ops = (
        PlanOperation.objects.filter(plan_id__in={p for _, p in pairs}, zone__isnull=False)
        .select_related("application", "zone")
        .prefetch_related("zone__frontends")
    )
    for op in ops:
        if (op.application_id, op.plan_id) in pairs:
            zoned[op.application.name] = {fe.name for fe in op.zone.frontends.all()}
    return zoned


def differences(
    report: dict[str, Any], recorded: dict[str, str], *, ignore: Iterable[str] = ()
) -> list[dict[str, str | None]]:
    """Where one front-end's report differs from ``recorded``: a recorded application whose link
    points elsewhere (or nowhere), and an application the console does not record as running whose
    link points somewhere."""
    actual = {app: (info or {}).get("current") for app, info in (report.get("applications") or {}).items()}
    out = []
    for app in sorted((set(recorded) | {a for a, release in actual.items() if release}) - set(ignore)):
        if recorded.get(app) != actual.get(app):
            out.append({"application": app, "recorded": recorded.get(app), "actual": actual.get(app)})
    return out


def reconcile(environments: Iterable[Environment] | None = None) -> list[FrontEnd]:
    """Compare every enabled front-end's last report with its environment's running versions and
    record the verdict; notify the front-ends that just drifted. Returns the drifted front-ends."""
    if environments is None:
        environments = Environment.objects.all()
    drifted: list[FrontEnd] = []
    now = timezone.now()
    for environment in environments:
        if DeploymentPlan.objects.filter(target=environment, state__in=SWITCHING).exists():
            drifted += list(environment.frontends.filter(enabled=True).exclude(drift=[]))
            continue
        recorded = recorded_releases(environment)
        zoned = zoned_applications(environment)
        for fe in environment.frontends.filter(enabled=True):
            if not fe.last_report or not fe.last_report.get("ok", True):
                continue  # no answer yet: nothing known, the last verdict stays
            elsewhere = [app for app, names in zoned.items() if fe.name not in names]
            found = differences(fe.last_report, recorded, ignore=elsewhere)
            if found:
                drifted.append(fe)
            if found == fe.drift:
                continue
            started = found and not fe.drift
            FrontEnd.objects.filter(pk=fe.pk).update(drift=found, drift_since=(now if found else None))
            fe.drift, fe.drift_since = found, (now if found else None)
            if started:
                logger.warning("front-end %s drifted: %s", fe, describe(fe))
                _notify(environment, fe)
            elif not found:
                logger.info("front-end %s runs the recorded versions again", fe)
    return drifted


def check_frontends(*, environment: Environment | None = None, timeout_s: float = 5.0) -> list[FrontEnd]:
    """Ask the agents for their reports, then reconcile (beat's periodic task)."""
    refresh_reports(environment=environment, timeout_s=timeout_s)
    return reconcile([environment] if environment is not None else None)


def describe(fe: FrontEnd) -> str:
    """``hr_core: recorded 1.0.0-…, runs 1.1.0-…`` for each drifted application of ``fe``."""
    return "; ".join(
        f"{d['application']}: recorded {d['recorded'] or 'nothing'}, runs {d['actual'] or 'nothing'}" for d in fe.drift
    )


def drifted_frontends(environment: Environment) -> list[FrontEnd]:
    return list(environment.frontends.filter(enabled=True).exclude(drift=[]).order_by("name"))


def refuse_if_drifted(environment: Environment, *, doing: str) -> None:
    """``doing`` (Prepare, Continue) is refused while a front-end of ``environment`` has drifted."""
    drifted = drifted_frontends(environment)
    if not drifted:
        return
    where = "; ".join(f"front-end {fe.name} ({describe(fe)})" for fe in drifted)
    raise Drifted(
        f"{doing} is refused: {environment.name} does not run what the console recorded on {where}. "
        "Put the front-end back on the recorded versions (a user with the manage right, on the "
        "environment's page), then try again."
    )


def put_back(*, actor: Actor, frontend: FrontEnd) -> FrontEnd:
    """Switch one drifted front-end, alone, to its environment's recorded releases (its health
    checked as in any switch), then ask it again. Audited. Refused without ``manage``, while a
    Continue runs on the environment, or when it has not drifted."""
    environment = frontend.environment
    if not actor.is_system:
        access.require(actor.user, environment, AccessLevel.MANAGE)
    if DeploymentPlan.objects.filter(target=environment, state__in=SWITCHING).exists():
        raise Conflict(f"A Continue is switching {environment.name}: put back after it ends.")
    frontend.refresh_from_db()
    if not frontend.drift:
        raise Refusal(f"Front-end {frontend.name} runs the recorded versions: nothing to put back.")
    recorded = recorded_releases(environment)
    links: dict[str, str | None] = {d["application"]: recorded.get(d["application"]) for d in frontend.drift}
    before = describe(frontend)
    log = ListLog()
    try:
        switch_frontends(frontends=[frontend], releases=links, log=log, switch_id=f"putback-{uuid.uuid4().hex[:16]}")
        done, message = True, f"Put back front-end {frontend.name}: {before}."
    except StepFailed as exc:
        done, message = False, f"Putting back front-end {frontend.name} failed: {exc.message}"
    audit.record(
        actor=actor,
        action="frontend.put_back",
        object_type="frontend",
        object_key=frontend.key,
        object_label=str(frontend),
        environment_key=environment.key,
        changes={"links": {"from": {d["application"]: d["actual"] for d in frontend.drift}, "to": links}},
        message=message,
    )
    check_frontends(environment=environment)
    frontend.refresh_from_db()
    if not done:
        raise Refusal(message)
    return frontend


DriftListener = Callable[[Environment, FrontEnd, str], None]
_listeners: list[DriftListener] = []


def on_drift(listener: DriftListener) -> DriftListener:
    """Register ``listener(environment, frontend, sentence)`` (at app start): called when a
    front-end starts to drift. Its failures are logged, never raised."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def _notify(environment: Environment, fe: FrontEnd) -> None:
    for listener in list(_listeners):
        try:
            listener(environment, fe, describe(fe))
        except Exception:
            logger.exception("listener %r failed on the drift of front-end %s", listener, fe)
