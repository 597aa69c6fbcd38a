"""Request bodies are refused from their headers, before anything reads them, and malformed
requests are answered 400 with a sentence.

The body-limit tests talk raw HTTP to a live server and send the headers only: a server that
tried to read (spool) the announced body would wait for it and the test would time out."""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import urlparse

import pytest
from django.test import Client
from django.urls import reverse

from deployments.models import ApplicationVersion

pytestmark = pytest.mark.django_db(transaction=True)


def raw_request(base_url: str, request: bytes, *, timeout: float = 5.0) -> tuple[int, str, float]:
    """Send ``request`` as is; (status, body, seconds until the answer)."""
    parsed = urlparse(base_url)
    started = time.perf_counter()
    with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                pytest.fail("the server waited for the body instead of answering from the headers")
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"</html>" in b"".join(chunks):
                break
    elapsed = time.perf_counter() - started
    raw = b"".join(chunks).decode(errors="replace")
    status = int(raw.split(" ", 2)[1])
    return status, raw.split("\r\n\r\n", 1)[-1], elapsed


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def post_headers(path: str, length: int | None, cookie: str = "", extra: str = "") -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: localhost",
        "Content-Type: multipart/form-data; boundary=xyz",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_an_upload_larger_than_the_limit_is_refused_from_its_headers(live_server, release_user):
    status, body, elapsed = raw_request(
        live_server.url, post_headers(reverse("catalog:upload"), 500 * 1024 * 1024, session_cookie(release_user))
    )
    assert status == 413
    assert "The request is larger than 65 MB: refused before reading it." in body
    assert elapsed < 1.0
    assert not ApplicationVersion.objects.exists()


def test_a_body_from_someone_not_signed_in_is_refused_before_sign_in_is_checked(live_server, landscape):
    status, body, elapsed = raw_request(live_server.url, post_headers(reverse("catalog:upload"), 10 * 1024 * 1024))
    assert status == 413
    assert "Sign in first: requests from someone not signed in may carry at most 64 KB." in body
    assert elapsed < 1.0


def test_a_body_of_unknown_length_is_refused(live_server, release_user):
    status, body, _ = raw_request(
        live_server.url,
        post_headers(reverse("catalog:upload"), None, session_cookie(release_user), "Transfer-Encoding: chunked"),
    )
    assert status == 411
    assert "Send the request body with a Content-Length" in body


def test_a_form_post_larger_than_a_megabyte_is_refused_outside_the_upload_page(live_server, release_user):
    status, body, _ = raw_request(
        live_server.url, post_headers(reverse("deployments:plans"), 5 * 1024 * 1024, session_cookie(release_user))
    )
    assert status == 413 and "larger than 1 MB" in body


def test_a_new_plan_from_a_malformed_environment_key_answers_400_with_a_sentence(client, landscape, release_user):
    client.force_login(release_user)
    response = client.get(reverse("deployments:plan_create") + "?source=abc&target=abc")
    assert response.status_code == 400
    assert "source must be the key of an environment (a UUID), not &#x27;abc&#x27;." in response.content.decode()
    unknown = client.get(reverse("deployments:plan_create") + f"?source={uuid.uuid4()}&target={uuid.uuid4()}")
    assert unknown.status_code == 404


def test_the_catalog_needs_a_right_on_some_environment(client, landscape, release_user):
    from tests.conftest import make_user

    nobody = make_user("nobody")
    client.force_login(nobody)
    for name in ("catalog:list",):
        response = client.get(reverse(name))
        assert response.status_code == 403
        assert "You need a right on at least one environment" in response.content.decode()
