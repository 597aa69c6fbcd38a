"""Sign-in: ten wrong passwords lock the sign-in out (429) for a cool-off, whatever
X-Forwarded-For says, and every attempt is in the audit trail; a stronger password policy."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from core import signin
from core.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def attempt(client: Client, username: str, password: str, **headers):
    return client.post(reverse("login"), {"username": username, "password": password}, **headers)


def test_ten_wrong_passwords_lock_the_sign_in_out_and_are_audit_rows(client, release_user):
    for n in range(1, 10):
        response = attempt(client, "release", f"wrong-{n}")
        assert response.status_code == 200, n
        assert "didn't match" in response.content.decode()
    tenth = attempt(client, "release", "wrong-10")
    assert tenth.status_code == 429
    assert "Too many failed sign-ins" in tenth.content.decode()
    assert int(tenth["Retry-After"]) == 15 * 60
    # Locked: even the right password is refused now.
    right = attempt(client, "release", PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    failed = AuditEvent.objects.filter(action="signin.failed")
    assert failed.count() == 11
    assert set(failed.values_list("object_label", flat=True)) == {"release"}
    assert "from 127.0.0.1" in failed.first().message
    locked = AuditEvent.objects.filter(action="signin.locked_out")
    assert locked.exists()
    assert "'release' from 127.0.0.1 after 10 failures" in locked.first().message
    assert not AuditEvent.objects.filter(action="signin.succeeded").exists()


def test_a_changing_x_forwarded_for_does_not_reset_the_count(client, release_user):
    for n in range(10):
        response = attempt(client, "release", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.{n}.{n + 1}")
    assert response.status_code == 429
    # Another user, another forged address, same client: locked by its address.
    other = attempt(client, "admin", "wrong", HTTP_X_FORWARDED_FOR="192.0.2.77")
    assert other.status_code == 429
    messages = list(AuditEvent.objects.filter(action="signin.failed").values_list("message", flat=True))
    assert all("from 127.0.0.1" in m for m in messages)


def test_the_username_is_locked_whatever_address_the_attempts_come_from(client, release_user):
    for n in range(10):
        attempt(client, "release", "wrong", REMOTE_ADDR=f"198.51.100.{n + 1}")
    assert attempt(client, "release", PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 429
    # Other users can still sign in from there.
    assert attempt(client, "admin", PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, release_user, settings):
    from axes.models import AccessAttempt

    for _ in range(10):
        attempt(client, "release", "wrong")
    assert attempt(client, "release", PASSWORD).status_code == 429
    # The cool-off is counted from the last failure: age every attempt past it.
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    response = attempt(client, "release", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert AuditEvent.objects.filter(action="signin.succeeded", actor=release_user).exists()


def test_behind_a_proxy_the_client_is_what_the_proxy_saw(rf, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7", REMOTE_ADDR="10.0.0.1")
    # The client wrote 6.6.6.6; our proxy appended the address it saw.
    assert signin.client_ip(request) == "198.51.100.7"
    settings.TRUSTED_PROXY_COUNT = 0
    assert signin.client_ip(request) == "10.0.0.1"


def test_sign_in_and_sign_out_are_audit_rows(client, release_user):
    assert attempt(client, "release", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    actions = list(AuditEvent.objects.filter(actor=release_user).values_list("action", "message"))
    assert ("signin.succeeded", "Signed in with a password from 127.0.0.1.") in actions
    assert ("signin.signed_out", "Signed out from 127.0.0.1.") in actions


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-pass1", "too short"),
        ("123456789012345", "entirely numeric"),
        ("administrator", "too common"),
        ("release@example.co", "too similar"),
    ],
)
def test_weak_passwords_are_refused(release_user, password, why):
    release_user.first_name, release_user.last_name = "Release", "Manager"
    with pytest.raises(ValidationError) as refused:
        validate_password(password, user=release_user)
    assert why in " ".join(refused.value.messages)


def test_a_long_uncommon_password_is_accepted(release_user):
    validate_password("correct horse battery staple", user=release_user)
