"""Notifications of plan events: a real SMTP server (aiosmtpd) and a real HTTP endpoint
(http.server), both in threads of this test, and a real Celery worker on the ``notifications``
queue. A webhook that fails is retried and never touches the plan."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from core.actors import Actor
from deployments.models import DeliveryStatus, NotificationDelivery, NotificationEvent, PlanState
from deployments.notifications import services as notifications
from tests.conftest import PASSWORD, dsn_for
from tests.processes import BIN, Process, _base_env, free_port

S = PlanState
E = NotificationEvent
SECRET = "s3cret-of-the-ops-webhook"


class Mailbox:
    """aiosmtpd in a thread: every message it receives, as (recipients, raw text)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[list[str], str]] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
                mailbox.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf8", "replace")))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class Endpoint:
    """An HTTP endpoint in a thread that records every POST; answers ``fail_first`` 503s first."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures_left = fail_first
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.received.append((dict(self.headers), body))
                if endpoint.failures_left > 0:
                    endpoint.failures_left -= 1
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/lifetime"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Endpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture
def notification_worker(mailbox) -> Iterator[Process]:
    """``celery -A lifetime worker -Q notifications`` against the test database, mailing to ``mailbox``."""
    # Messages left over by an earlier run would name deliveries of another database.
    redis.Redis.from_url(settings.REDIS_URL).delete("notifications")
    worker = Process(
        "notifications-worker",
        [
            str(BIN / "celery"),
            "-A",
            "lifetime",
            "worker",
            "-Q",
            "notifications",
            "--pool=solo",
            "-n",
            f"notifications-{free_port()}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ],
        _base_env(
            {
                "DATABASE_URL": dsn_for(settings.DATABASES["default"]["NAME"]),
                "LIFETIME_DEV": "true",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(mailbox.port),
                "NOTIFICATION_RETRY_DELAY_SECONDS": "1",
                "NOTIFICATION_MAX_ATTEMPTS": "3",
            }
        ),
    ).start()
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(condition, *, timeout_s: float = 30.0, what: str = "", worker: Process | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{worker.log()[-3000:]}" if worker else ""))


@pytest.mark.django_db(transaction=True)
def test_prepared_and_finished_reach_a_real_mail_server_and_a_signed_webhook(
    landscape, admin_user, driver, mailbox, notification_worker
):
    prod = landscape["Production"]
    with Endpoint() as endpoint:
        notifications.save_rule(
            actor=Actor.person(admin_user),
            environment=prod,
            kind="email",
            target="ops@example.com, dba@example.com",
            events=[E.PREPARED, E.FINISHED_SUCCESSFUL],
        )
        notifications.save_rule(
            actor=Actor.person(admin_user),
            environment=prod,
            kind="webhook",
            target=endpoint.url,
            events=[E.PREPARED, E.FINISHED_SUCCESSFUL, E.ABORTED],
            secret=SECRET,
        )
        d = driver()
        d.prepare()
        wait_for(lambda: len(mailbox.messages) >= 1 and endpoint.received, what="prepared", worker=notification_worker)
        recipients, text = mailbox.messages[0]
        mail = email.message_from_string(text, policy=email.policy.default)
        assert sorted(recipients) == ["dba@example.com", "ops@example.com"]
        assert mail["Subject"].strip().startswith("[LifeTime] Production: Prepared")
        assert f"/plans/{d.plan.key}/" in mail.get_content()
        headers, body = endpoint.received[0]
        assert headers["X-Lifetime-Event"] == "prepared"
        assert headers["X-Lifetime-Signature"] == notifications.sign(SECRET, body)
        payload = json.loads(body)
        assert payload["plan"]["key"] == str(d.plan.key) and payload["plan"]["status"] == "needs_user_intervention"
        assert payload["plan"]["expires_at"]

        d.continue_all()
        wait_for(lambda: len(mailbox.messages) >= 2 and len(endpoint.received) >= 2, what="finished")
        assert json.loads(endpoint.received[1][1])["event"] == "finished_successful"
        finished = email.message_from_string(mailbox.messages[1][1], policy=email.policy.default)
        assert "Finished successful" in finished["Subject"]
    deliveries = NotificationDelivery.objects.filter(plan=d.plan)
    assert deliveries.count() == 4
    assert set(deliveries.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}


@pytest.mark.django_db(transaction=True)
def test_a_failing_webhook_is_retried_and_the_plan_goes_on(landscape, admin_user, driver, notification_worker):
    prod = landscape["Production"]
    with Endpoint(fail_first=2) as endpoint:
        notifications.save_rule(
            actor=Actor.person(admin_user),
            environment=prod,
            kind="webhook",
            target=endpoint.url,
            events=[E.PREPARED],
            secret=SECRET,
        )
        d = driver()
        d.prepare()
        assert d.plan.state == S.PREPARED  # the transition did not wait for the webhook
        delivery = wait_for(
            lambda: NotificationDelivery.objects.filter(plan=d.plan, status=DeliveryStatus.DELIVERED).first(),
            what="the third try",
            worker=notification_worker,
        )
    assert delivery.attempts == 3 and delivery.response_code == 204
    assert len(endpoint.received) == 3
    assert all(h["X-Lifetime-Signature"] == notifications.sign(SECRET, b) for h, b in endpoint.received)
    d.plan.refresh_from_db()
    assert d.plan.state == S.PREPARED


@pytest.mark.django_db(transaction=True)
def test_a_dead_webhook_gives_up_after_the_last_try_and_is_shown_failed(
    client, landscape, admin_user, driver, notification_worker
):
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    rule, generated = notifications.save_rule(
        actor=Actor.person(admin_user),
        environment=landscape["Production"],
        kind="webhook",
        target=dead,
        events=[E.PREPARED],
    )
    assert generated and rule.secret_encrypted and generated not in rule.secret_encrypted
    d = driver()
    d.prepare()
    delivery = wait_for(
        lambda: NotificationDelivery.objects.filter(plan=d.plan, status=DeliveryStatus.FAILED).first(),
        what="giving up",
        worker=notification_worker,
    )
    assert delivery.attempts == 3 and "did not answer" in delivery.last_error
    d.plan.refresh_from_db()
    assert d.plan.state == S.PREPARED
    client.login(username="admin", password=PASSWORD)
    html = client.get(reverse("notifications:rules", args=[landscape["Production"].key])).content.decode()
    assert "Failed" in html and "did not answer" in html and dead in html


@pytest.mark.django_db(transaction=True)
def test_a_broken_notification_never_reaches_the_transition(landscape, admin_user, driver, monkeypatch):
    notifications.save_rule(
        actor=Actor.person(admin_user),
        environment=landscape["Production"],
        kind="email",
        target="ops@example.com",
        events=["prepared"],
    )

    def explode(*args, **kwargs):
        raise RuntimeError("the notifications are broken")

    monkeypatch.setattr(notifications, "notify", explode)
    d = driver()
    d.prepare()
    d.plan.refresh_from_db()
    assert d.plan.state == S.PREPARED


def test_events_of_each_move():
    assert notifications.event_for(S.PREPARING, S.PREPARED) == E.PREPARED
    # Cancelling a scheduled Continue makes the plan prepared again: no new announcement.
    assert notifications.event_for(S.SCHEDULED, S.PREPARED) is None
    assert notifications.event_for(S.CONTINUING, S.SUSPENDED) == E.FAILED
    assert notifications.event_for(S.APPLYING, S.FINISHED_WITH_WARNINGS) == E.FINISHED_WITH_WARNINGS
    assert notifications.event_for(S.APPLYING, S.FINISHED_WITH_ERRORS) == E.FINISHED_WITH_ERRORS
    assert notifications.event_for(S.PREPARED, S.ABORTED) == E.ABORTED
    assert notifications.event_for(S.SAVED, S.PREPARING) is None
    # A Roll Back of some applications, or a failed one, finishes the plan as it was: not announced again.
    assert notifications.event_for(S.ROLLING_BACK, S.FINISHED_SUCCESSFUL) is None
    assert notifications.event_for(S.FINISHED_SUCCESSFUL, S.ROLLING_BACK) is None


@pytest.mark.django_db
def test_an_expiring_prepared_plan_is_announced_once(landscape, admin_user, driver, django_capture_on_commit_callbacks):
    prod = landscape["Production"]
    notifications.save_rule(
        actor=Actor.person(admin_user), environment=prod, kind="email", target="ops@example.com", events=[E.EXPIRING]
    )
    d = driver()
    d.prepare()
    prepared_at = d.plan.prepared_at
    assert notifications.warn_expiring_plans(now=prepared_at + dt.timedelta(hours=10)) == 0  # far from expiry
    soon = prepared_at + dt.timedelta(hours=90)
    with django_capture_on_commit_callbacks():
        assert notifications.warn_expiring_plans(now=soon) == 1
        assert notifications.warn_expiring_plans(now=soon + dt.timedelta(minutes=5)) == 0
    delivery = NotificationDelivery.objects.get(plan=d.plan, event=E.EXPIRING)
    assert "expires in 6 h 00 min" in delivery.payload["reason"]
    assert notifications.warn_expiring_plans(now=prepared_at + dt.timedelta(hours=97)) == 0  # already expired


@pytest.mark.django_db
def test_the_notifications_page_needs_the_manage_right(client, landscape, admin_user, release_user):
    prod = landscape["Production"]
    url = reverse("notifications:rules", args=[prod.key])
    client.login(username="release", password=PASSWORD)
    assert client.get(url).status_code == 403
    assert "Notifications" not in client.get(reverse("environments:detail", args=[prod.key])).content.decode()
    client.logout()
    client.login(username="admin", password=PASSWORD)
    assert f'href="{url}"' in client.get(reverse("environments:detail", args=[prod.key])).content.decode()
    response = client.post(
        url, {"kind": "webhook", "target": "http://127.0.0.1:9/hook", "events": ["prepared", "aborted"]}, follow=True
    )
    html = response.content.decode()
    assert "Its signing secret, shown only now" in html
    assert "http://127.0.0.1:9/hook" in html and "HMAC-SHA256" in html
    refused = client.post(url, {"kind": "webhook", "target": "ftp://x", "events": ["prepared"]}).content.decode()
    assert "http:// or https:// URL" in refused
    assert timezone.now()
