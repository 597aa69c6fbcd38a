"""The signature of agent tasks, on its own: what verifies and what does not."""

from __future__ import annotations

import time

import pytest

from agent import signing

KEY = signing.new_key()
TASK_ID = "2f1c7d0a-8a55-4e6e-a2a4-0d9b8c1e4f11"
QUEUE = "frontend.production.fe1"
KWARGS = {"switch_id": "s1", "links": {"hello": "2.0.0-abcdefabcdef"}, "health_timeout_s": 8.0}


def _verify(auth, *, key=KEY, task="agent.switch", queue=QUEUE, args=(), kwargs=KWARGS, now=None):
    return signing.verify(
        key=key, auth=auth, task=task, task_id=TASK_ID, queue=queue, args=args, kwargs=kwargs, now=now or time.time()
    )


def _auth(*, expires_in: int = 60, kwargs=KWARGS):
    return signing.sign(
        key=KEY,
        task="agent.switch",
        task_id=TASK_ID,
        queue=QUEUE,
        kwargs=kwargs,
        expires_at=int(time.time()) + expires_in,
    )


def test_a_message_signed_for_this_frontend_verifies():
    assert _verify(_auth()) > time.time()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"auth": None}, "not signed by the console"),
        ({"key": signing.new_key()}, "does not match this front-end's key"),
        ({"queue": "frontend.development.fe1"}, "does not match"),
        ({"task": "agent.cleanup"}, "does not match"),
        ({"kwargs": {**KWARGS, "links": {"hello": "6.6.6-abcdefabcdef"}}}, "does not match"),
        ({"now": time.time() + 3600}, "expired"),
    ],
)
def test_anything_else_is_refused_with_a_reason(change, reason):
    auth = change.pop("auth", _auth())
    with pytest.raises(signing.SignatureRefused, match=reason):
        _verify(auth, **change)


def test_a_signature_claiming_a_longer_life_than_the_console_gives_is_refused():
    with pytest.raises(signing.SignatureRefused, match="longer than the console ever signs"):
        _verify(_auth(expires_in=signing.DEFAULT_VALIDITY_S * 2))


def test_positional_arguments_are_refused_even_when_signed():
    auth = signing.sign(
        key=KEY, task="agent.switch", task_id=TASK_ID, queue=QUEUE, kwargs={}, expires_at=int(time.time()) + 60
    )
    message = signing.canonical(
        task="agent.switch", task_id=TASK_ID, queue=QUEUE, args=["x"], kwargs={}, expires_at=auth["exp"]
    )
    import hashlib
    import hmac

    forged = {**auth, "sig": hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest()}
    with pytest.raises(signing.SignatureRefused, match="keyword arguments only"):
        _verify(forged, args=["x"], kwargs={})
