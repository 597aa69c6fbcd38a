"""Webhooks and health URLs never become a way into the inside: no loopback, private, link-local or
metadata target without the setting, no redirect followed, no answer body shown."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from core import outbound
from core.actors import Actor
from deployments.models import NotificationDelivery, NotificationEvent
from deployments.notifications import services as notifications
from environments import services as env_services

E = NotificationEvent
INSIDE = ["http://127.0.0.1:8080/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/"]


class Server:
    """A local HTTP server answering every POST with ``status``, ``body`` and ``headers``."""

    def __init__(self, *, status: int = 204, body: bytes = b"", headers: dict | None = None) -> None:
        self.received: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.received.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def no_inside(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


def test_without_the_setting_webhooks_to_loopback_private_and_metadata_addresses_are_refused(
    landscape, admin_user, no_inside
):
    prod = landscape["Production"]
    for target in [*INSIDE, "http://localhost/hook", "http://[::1]/hook", "http://[::ffff:10.0.0.1]/hook"]:
        with pytest.raises(notifications.RuleRefused, match="Calls to the inside of the network are refused"):
            notifications.save_rule(
                actor=Actor.person(admin_user), environment=prod, kind="webhook", target=target, events=[E.PREPARED]
            )
    assert not prod.notification_rules.exists()


def test_the_metadata_address_is_refused_even_when_its_network_is_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]
    with pytest.raises(outbound.OutboundRefused, match="cloud metadata address"):
        outbound.check_url("http://169.254.169.254/latest/meta-data/")
    assert outbound.check_url("http://10.0.0.1/hook").address == "10.0.0.1"


def test_a_delivery_checks_its_target_again_and_never_connects_inside(landscape, admin_user, settings):
    """The rule was saved while the setting allowed the inside; it no longer does: nothing is sent."""
    prod = landscape["Production"]
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    rule, _ = notifications.save_rule(
        actor=Actor.person(admin_user),
        environment=prod,
        kind="webhook",
        target="http://10.0.0.1/hook",
        events=[E.PREPARED],
    )
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    delivery = NotificationDelivery.objects.create(rule=rule, plan=None, event="test", payload={"event": "test"})

    with pytest.raises(notifications.DeliveryFailed, match="resolves to a private address"):
        notifications.deliver(delivery.pk, last_attempt=True)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.response_code is None


def test_redirects_are_not_followed_and_answer_bodies_are_not_shown(client, landscape, admin_user):
    prod = landscape["Production"]
    inner = Server(body=b"inner")
    redirecting = Server(status=302, headers={"Location": f"{inner.url}/secret"})
    talkative = Server(status=500, body=b"db password is hunter2")
    try:
        for server in (redirecting, talkative):
            rule, _ = notifications.save_rule(
                actor=Actor.person(admin_user),
                environment=prod,
                kind="webhook",
                target=f"{server.url}/hook",
                events=[E.PREPARED],
            )
            delivery = NotificationDelivery.objects.create(
                rule=rule, plan=None, event="test", payload={"event": "test"}
            )
            with pytest.raises(notifications.DeliveryFailed):
                notifications.deliver(delivery.pk, last_attempt=True)
        assert redirecting.received == ["/hook"] and inner.received == [], "the redirect was followed"
        errors = list(NotificationDelivery.objects.values_list("last_error", flat=True))
        assert "the webhook answered HTTP 302" in errors and "the webhook answered HTTP 500" in errors
        client.force_login(admin_user)
        page = client.get(reverse("notifications:rules", args=[prod.key])).content.decode()
        assert "hunter2" not in page and "HTTP 500" in page
    finally:
        for server in (inner, redirecting, talkative):
            server.close()


def test_a_health_url_must_be_on_the_frontends_own_host_and_not_inside(landscape, admin_user, tmp_path, settings):
    prod = landscape["Production"]
    data = {"name": "fe9", "releases_root": str(tmp_path / "fe9"), "base_url": "http://127.0.0.1:8131/"}
    with pytest.raises(env_services.InvalidInput, match="must be on the front-end's own host"):
        env_services.save_frontend(
            actor=Actor.person(admin_user),
            environment=prod,
            data={**data, "health_url": "http://127.0.0.2:8131/_health"},
        )
    with pytest.raises(env_services.InvalidInput, match="Give the front-end's URL first"):
        env_services.save_frontend(
            actor=Actor.person(admin_user),
            environment=prod,
            data={**data, "base_url": "", "health_url": "http://127.0.0.1/_health"},
        )
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(env_services.InvalidInput, match="resolves to a loopback address"):
        env_services.save_frontend(
            actor=Actor.person(admin_user),
            environment=prod,
            data={**data, "health_url": "http://127.0.0.1:8131/_health"},
        )
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    fe = env_services.save_frontend(
        actor=Actor.person(admin_user), environment=prod, data={**data, "health_url": "http://127.0.0.1:8131/_health"}
    )
    assert fe.health_url == "http://127.0.0.1:8131/_health"


class Resolver:
    """The machine's resolver, except for names of the test: each look-up of such a name gets the next
    answer of its list (a DNS server that changes its mind between two look-ups)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: dict[str, int] = {}
        self.real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        count = self.lookups.get(host, 0)
        self.lookups[host] = count + 1
        addresses = self.answers[host][min(count, len(self.answers[host]) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]


def test_every_address_a_name_resolves_to_is_checked(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"mixed.example": [["127.0.0.1", "10.0.0.1"]]}))
    with pytest.raises(outbound.OutboundRefused, match=r"private address \(10.0.0.1\)"):
        outbound.check_url("http://mixed.example/hook")


def test_the_call_goes_to_the_address_that_was_checked_even_if_the_name_changes_its_answer(monkeypatch):
    server = Server()
    port = int(server.url.rsplit(":", 1)[1])
    # Checked as 127.0.0.1 (where the server listens); asked again, the name would say 127.0.0.2,
    # where nothing listens: a second look-up would fail the call.
    resolver = Resolver({"rebind.example": [["127.0.0.1"], ["127.0.0.2"]]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    try:
        status = outbound.post(f"http://rebind.example:{port}/hook", body=b"{}", headers={}, timeout_s=5)
    finally:
        server.close()
    assert status == 204 and server.received == ["/hook"]
    assert resolver.lookups["rebind.example"] == 1
