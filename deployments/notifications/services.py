"""Notifications of plan events to the people and systems that care: email and signed webhooks.

Who hears what is set per environment (NotificationRule). ``plan_moved`` listens to every move of a
plan, after its transaction commits; it records one NotificationDelivery per matching rule
and hands each to the ``notifications`` queue, where ``deliver`` sends it and the task retries it
with a growing delay. Nothing here may ever disturb a deployment: ``plan_moved`` swallows and logs
every error, and a webhook that fails only marks its delivery.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from core import audit, encryption, outbound
from core.actors import Actor
from core.refusals import Refusal
from deployments.models import (
    DeliveryStatus,
    DeploymentPlan,
    NotificationDelivery,
    NotificationEvent,
    NotificationKind,
    NotificationRule,
)
from deployments.state import machine
from deployments.state.machine import PlanState
from deployments.state.moves import PlanMove
from environments import access
from environments.models import AccessLevel, Environment

logger = logging.getLogger(__name__)
P = PlanState
E = NotificationEvent
DELIVER_TASK = "deployments.tasks.deliver_notification"
NOTIFICATIONS_QUEUE = "notifications"

SIGNATURE_HEADER = "X-Lifetime-Signature"
WEBHOOK_TIMEOUT_S = 5.0
# How many times a delivery is tried in all, and the first delay between two tries (doubled each time).
MAX_ATTEMPTS = getattr(settings, "NOTIFICATION_MAX_ATTEMPTS", 6)
RETRY_DELAY_S = getattr(settings, "NOTIFICATION_RETRY_DELAY_SECONDS", 10)
# A prepared plan is announced as expiring this long before its target's TTL runs out.
EXPIRY_WARNING = dt.timedelta(hours=getattr(settings, "PREPARED_PLAN_EXPIRY_WARNING_HOURS", 12))


class DeliveryFailed(Exception):
    """The mail server or the webhook did not take the notification; the message says how."""


class RuleRefused(Refusal):
    """A notification rule cannot be saved as given; the message says why."""


_EVENTS = {
    P.SUSPENDED: E.FAILED,
    P.FINISHED_SUCCESSFUL: E.FINISHED_SUCCESSFUL,
    P.FINISHED_WITH_WARNINGS: E.FINISHED_WITH_WARNINGS,
    P.FINISHED_WITH_ERRORS: E.FINISHED_WITH_ERRORS,
    P.ABORTED: E.ABORTED,
}


def event_for(source: str, to: str) -> str | None:
    """The notification event a plan moving from ``source`` to ``to`` stands for, if any: prepared
    when a Prepare finishes (not when a schedule is cancelled)."""
    if to == P.PREPARED:
        return E.PREPARED if source == P.PREPARING else None
    if source == P.ROLLING_BACK:
        # A Roll Back of some applications, or one that failed: the plan is finished as it was
        # (already told); not a new deployment.
        return None
    return _EVENTS.get(to)


# --- raising events -----------------------------------------------------------------------------


def plan_moved(move: PlanMove) -> None:
    """Listens to every committed move of a plan (registered at app start). Cheap when nobody
    listens; never raises."""
    try:
        event = event_for(move.source, move.to)
        if event is None:
            return
        events = [event]
        if event == E.PREPARED:
            # A prepare that needs approvals asks the approvers too.
            events.append(E.APPROVAL_NEEDED)
        if not NotificationRule.objects.filter(
            environment__plans_to=move.plan_id, enabled=True, events__overlap=events
        ).exists():
            return
        plan = DeploymentPlan.objects.select_related("source", "target").get(pk=move.plan_id)
        for wanted in events:
            if wanted == E.APPROVAL_NEEDED and not plan.target.approvals_required:
                continue
            notify(plan=plan, event=wanted)
    except Exception:  # a notification problem must never reach the deployment
        logger.exception("notifications for plan %s moving to %s could not be queued", move.plan_id, move.to)


def approval_decided(plan_id: int, event: str, reason: str) -> None:
    """Listens to decisions on approvals (registered at app start): all approvals in, or a
    rejection. Never raises."""
    try:
        plan = DeploymentPlan.objects.select_related("source", "target").get(pk=plan_id)
        notify(plan=plan, event=event, reason=reason)
    except Exception:  # a notification problem must never reach the decision
        logger.exception("notifications of an approval of plan %s could not be queued", plan_id)


def notify(*, plan: DeploymentPlan, event: str, reason: str | None = None) -> list[NotificationDelivery]:
    """Record a delivery of ``event`` for every enabled rule of the plan's target that wants it, and queue them."""
    rules = list(NotificationRule.objects.filter(environment_id=plan.target_id, enabled=True, events__contains=[event]))
    if not rules:
        return []
    if reason is None:
        reason = plan.transitions.order_by("-at", "-id").values_list("reason", flat=True).first() or ""
    payload = payload_for(plan, event, reason)
    deliveries = []
    for rule in rules:
        try:
            with transaction.atomic():
                deliveries.append(
                    NotificationDelivery.objects.create(rule=rule, plan=plan, event=event, payload=payload)
                )
        except IntegrityError:
            continue  # already announced (an expiry warning goes out once per plan)
    for delivery in deliveries:
        _enqueue(delivery.pk)
    return deliveries


def frontend_drifted(environment: Environment, frontend: Any, sentence: str) -> list[NotificationDelivery]:
    """A front-end of ``environment`` started to run other versions than recorded (listens to the
    reconciliation, registered at app start): one delivery per rule that wants ``drifted``."""
    rules = list(NotificationRule.objects.filter(environment=environment, enabled=True, events__contains=[E.DRIFTED]))
    if not rules:
        return []
    payload = {
        "event": E.DRIFTED,
        "event_label": E.DRIFTED.label,
        "at": timezone.now().isoformat(),
        "reason": f"Front-end {frontend.name} of {environment.name}: {sentence}.",
        "environment": {"key": str(environment.key), "name": environment.name},
        "frontend": {"key": str(frontend.key), "name": frontend.name, "drift": frontend.drift},
    }
    deliveries = [
        NotificationDelivery.objects.create(rule=rule, plan=None, event=E.DRIFTED, payload=payload) for rule in rules
    ]
    for delivery in deliveries:
        _enqueue(delivery.pk)
    return deliveries


def _enqueue(delivery_id: int) -> None:
    def send() -> None:
        try:
            current_app.send_task(DELIVER_TASK, args=[delivery_id], queue=NOTIFICATIONS_QUEUE)
        except Exception:  # the broker is down: the delivery stays queued, visible on the page
            logger.exception("notification delivery %s could not be queued", delivery_id)

    transaction.on_commit(send)


def payload_for(plan: DeploymentPlan, event: str, reason: str) -> dict[str, Any]:
    label = E(event).label
    return {
        "event": event,
        "event_label": label,
        "at": timezone.now().isoformat(),
        "reason": reason,
        "plan": {
            "key": str(plan.key),
            "url": settings.CONSOLE_BASE_URL.rstrip("/") + reverse("deployments:plan", args=[plan.key]),
            "title": f"Deploy from {plan.source.name} to {plan.target.name}",
            "source": plan.source.name,
            "target": plan.target.name,
            "target_key": str(plan.target.key),
            "state": plan.state,
            "status": plan.api_status,
            "info": plan.api_info,
            "notes": plan.notes,
            "prepared_at": plan.prepared_at.isoformat() if plan.prepared_at else None,
            "expires_at": plan.expires_at.isoformat() if plan.expires_at else None,
        },
    }


def warn_expiring_plans(*, now: dt.datetime | None = None) -> int:
    """Beat: announce prepared plans that expire within EXPIRY_WARNING, once per plan and rule."""
    now = now or timezone.now()
    count = 0
    prepared = DeploymentPlan.objects.select_related("source", "target").filter(
        state__in=machine.PREPARED,
        prepared_at__isnull=False,
        target__notification_rules__enabled=True,
        target__notification_rules__events__contains=[E.EXPIRING],
    )
    for plan in prepared.distinct():
        expires = plan.expires_at
        if not (now < expires <= now + EXPIRY_WARNING):
            continue
        left = expires - now
        hours = int(left.total_seconds() // 3600)
        minutes = int(left.total_seconds() % 3600 // 60)
        reason = (
            f"Prepared {plan.prepared_at:%Y-%m-%d %H:%M} UTC; expires in {hours} h {minutes:02d} min unless continued."
        )
        count += len(notify(plan=plan, event=E.EXPIRING, reason=reason))
    return count


# --- sending ------------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The value of X-Lifetime-Signature: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(delivery_id: int, *, last_attempt: bool) -> None:
    """Send one delivery once; record the attempt. Raises DeliveryFailed when it did not go through."""
    delivery = NotificationDelivery.objects.select_related("rule").get(pk=delivery_id)
    if delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED):
        return  # a redelivered message: already settled
    attempts = delivery.attempts + 1
    try:
        code = _send(delivery)
    except DeliveryFailed as exc:
        NotificationDelivery.objects.filter(pk=delivery.pk).update(
            attempts=attempts,
            last_error=str(exc)[:2000],
            status=DeliveryStatus.FAILED if last_attempt else DeliveryStatus.RETRYING,
            response_code=getattr(exc, "code", None),
            updated_at=timezone.now(),
        )
        raise
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        attempts=attempts,
        status=DeliveryStatus.DELIVERED,
        response_code=code,
        delivered_at=timezone.now(),
        updated_at=timezone.now(),
    )


def retry_delay(retries: int) -> int:
    """Seconds before the next try: RETRY_DELAY_S, doubled each time, at most five minutes."""
    return min(RETRY_DELAY_S * (2**retries), 300)


def _send(delivery: NotificationDelivery) -> int | None:
    rule = delivery.rule
    if rule.kind == NotificationKind.EMAIL:
        return _send_email(rule, delivery.payload)
    return _send_webhook(rule, delivery)


def _send_email(rule: NotificationRule, payload: dict[str, Any]) -> None:
    if "plan" not in payload:  # an environment's event (a drifted front-end), not a plan's
        subject = f"[LifeTime] {payload['environment']['name']}: {payload['event_label']}"
        lines = [payload["reason"]]
        return _mail(rule, subject, lines)
    plan = payload["plan"]
    subject = f"[LifeTime] {plan['target']}: {payload['event_label']} — {plan['title']}"
    lines = [
        f"{plan['title']}: {payload['event_label'].lower()}.",
        "",
        *([payload["reason"], ""] if payload.get("reason") else []),
        f"Status: {plan['status']}{' (' + plan['info'] + ')' if plan['info'] else ''}",
        *([f"Expires: {plan['expires_at']}"] if payload["event"] in (E.PREPARED, E.EXPIRING) else []),
        *([f"Notes: {plan['notes']}"] if plan.get("notes") else []),
        "",
        plan["url"],
    ]
    return _mail(rule, subject, lines)


def _mail(rule: NotificationRule, subject: str, lines: list[str]) -> None:
    try:
        send_mail(subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, _addresses(rule.target))
    except Exception as exc:  # smtplib and socket errors alike: the mail server did not take it
        raise DeliveryFailed(f"the mail server refused or did not answer: {exc}") from exc
    return None


def _addresses(target: str) -> list[str]:
    return [a.strip() for a in target.replace(";", ",").split(",") if a.strip()]


def _send_webhook(rule: NotificationRule, delivery: NotificationDelivery) -> int:
    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "LifeTime-console",
        "X-Lifetime-Event": delivery.event,
        "X-Lifetime-Delivery": str(delivery.pk),
    }
    if rule.secret_encrypted:
        headers[SIGNATURE_HEADER] = sign(encryption.decrypt(rule.secret_encrypted), body)
    # Checked again at every delivery (core.outbound): what the name resolves to may have changed
    # since the rule was saved. The answer's body is never kept: it could be anything on the inside.
    try:
        status = outbound.post(rule.target, body=body, headers=headers, timeout_s=WEBHOOK_TIMEOUT_S)
    except outbound.OutboundRefused as exc:
        raise DeliveryFailed(exc.message) from None
    except outbound.OutboundFailed as exc:
        raise DeliveryFailed(f"the webhook did not answer: {exc.message}") from None
    if not 200 <= status < 300:
        failure = DeliveryFailed(f"the webhook answered HTTP {status}")
        failure.code = status  # type: ignore[attr-defined]
        raise failure
    return status


# --- rules (the environment's notifications page) ---------------------------------------------


def save_rule(
    *,
    actor: Actor,
    environment: Environment,
    kind: str,
    target: str,
    events: list[str],
    secret: str = "",
    rule: NotificationRule | None = None,
) -> tuple[NotificationRule, str]:
    """Create or change a rule. Returns the rule and the webhook secret when one was generated
    (shown once to the user, then only kept encrypted)."""
    _require(actor, environment, AccessLevel.MANAGE)
    target = target.strip()
    if kind not in NotificationKind.values:
        raise RuleRefused("Choose email or webhook.")
    unknown = set(events) - set(E.values)
    if unknown or not events:
        raise RuleRefused("Choose at least one event." if not events else f"Unknown events: {', '.join(unknown)}.")
    if kind == NotificationKind.WEBHOOK and not target.startswith(("http://", "https://")):
        raise RuleRefused("A webhook target is an http:// or https:// URL.")
    if kind == NotificationKind.WEBHOOK:
        try:
            outbound.check_url(target, what="The webhook target")
        except outbound.OutboundRefused as exc:
            raise RuleRefused(exc.message) from None
    if kind == NotificationKind.EMAIL and not all("@" in a for a in _addresses(target) or [""]):
        raise RuleRefused("Give one or more email addresses, separated by commas.")
    generated = ""
    if kind == NotificationKind.WEBHOOK and not secret and (rule is None or not rule.secret_encrypted):
        secret = generated = secrets.token_urlsafe(32)
    with transaction.atomic():
        if rule is None:
            rule = NotificationRule(environment=environment, created_by=actor.user)
        rule.kind, rule.target, rule.events = kind, target, sorted(set(events), key=list(E.values).index)
        if secret:
            rule.secret_encrypted = encryption.encrypt(secret)
        rule.save()
        audit.record(
            actor=actor,
            action="notification_rule.saved",
            object_type="notification_rule",
            object_key=rule.key,
            object_label=str(rule),
            environment_key=environment.key,
            # The secret itself never goes into the audit trail.
            changes={"kind": kind, "target": target, "events": rule.events, "secret_changed": bool(secret)},
        )
    return rule, generated


def set_rule_enabled(*, actor: Actor, rule: NotificationRule, enabled: bool) -> None:
    _require(actor, rule.environment, AccessLevel.MANAGE)
    NotificationRule.objects.filter(pk=rule.pk).update(enabled=enabled)
    audit.record(
        actor=actor,
        action="notification_rule.enabled" if enabled else "notification_rule.disabled",
        object_type="notification_rule",
        object_key=rule.key,
        object_label=str(rule),
        environment_key=rule.environment.key,
    )


def delete_rule(*, actor: Actor, rule: NotificationRule) -> None:
    _require(actor, rule.environment, AccessLevel.MANAGE)
    with transaction.atomic():
        audit.record(
            actor=actor,
            action="notification_rule.deleted",
            object_type="notification_rule",
            object_key=rule.key,
            object_label=str(rule),
            environment_key=rule.environment.key,
        )
        rule.delete()


def send_test(*, actor: Actor, rule: NotificationRule) -> NotificationDelivery:
    """Queue a sample delivery to the rule's target, recorded like any other."""
    _require(actor, rule.environment, AccessLevel.MANAGE)
    env = rule.environment
    payload = {
        "event": "test",
        "event_label": "Test notification",
        "at": timezone.now().isoformat(),
        "reason": f"Sent from the notifications page of {env.name} by {actor.name}.",
        "plan": {
            "key": "",
            "url": settings.CONSOLE_BASE_URL.rstrip("/") + reverse("notifications:rules", args=[env.key]),
            "title": f"Notifications of {env.name}",
            "source": "",
            "target": env.name,
            "target_key": str(env.key),
            "status": "",
            "info": "",
            "notes": "",
            "prepared_at": None,
            "expires_at": None,
        },
    }
    delivery = NotificationDelivery.objects.create(rule=rule, plan=None, event="test", payload=payload)
    _enqueue(delivery.pk)
    return delivery


def _require(actor: Actor, environment: Environment, level: int) -> None:
    if not actor.is_system:
        access.require(actor.user, environment, level)
