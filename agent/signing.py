"""Signed agent tasks: the console signs every task for one front-end with that front-end's own key,
and the agent runs only what verifies with its key.

The signature is an HMAC-SHA256 over a canonical JSON of the task's name, its id, the queue it is
sent to (the front-end's identity), its arguments and an expiry time; it travels in a message
header (``lifetime_auth``). Whoever can write to the broker but holds no key cannot make an agent
run anything; a key per front-end means that a Development host, which holds its own key, cannot
drive a Production agent either, and a message signed for one front-end is refused by every other.
A replay is bounded by the expiry, and the agent remembers the ids it has run until then (see
``agent.guard``).

Only the standard library, so that the agent stays free of the console's dependencies; the console
imports this module to sign.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

HEADER = "lifetime_auth"
VERSION = 1
# A task the console does not wait for (a revert queued for a stopped agent) stays valid as long
# as the agents keep their switch journals; anything older is refused.
DEFAULT_VALIDITY_S = 7 * 24 * 3600
# However short the console's wait, a signature lives at least this long: the clocks of the
# console's host and the front-end's host are never exactly equal.
MIN_VALIDITY_S = 60
TASK_ID_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")
KEY_BYTES = 32


class SignatureRefused(Exception):
    """The message is not one the console signed for this front-end; ``reason`` says why, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_key() -> str:
    """A fresh front-end key (256 random bits, URL-safe text)."""
    return secrets.token_urlsafe(KEY_BYTES)


def canonical(
    *, task: str, task_id: str, queue: str, args: Sequence[Any], kwargs: Mapping[str, Any], expires_at: int
) -> bytes:
    """The bytes that are signed. JSON with sorted keys and no spaces: both ends compute it from
    what the broker carried, so the serializer's own formatting never matters."""
    body = {
        "v": VERSION,
        "task": task,
        "id": task_id,
        "queue": queue,
        "args": list(args),
        "kwargs": dict(kwargs),
        "exp": int(expires_at),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


ANSWER_SIGNATURE = "_signature"


def _answer_message(task_id: str, answer: Mapping[str, Any]) -> bytes:
    body = {"v": VERSION, "id": task_id, "answer": {k: v for k, v in answer.items() if k != ANSWER_SIGNATURE}}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_answer(*, key: str, task_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with the agent's signature: the result backend is as open as the broker, so the
    console believes only answers signed with the key of the front-end it asked."""
    # Through JSON first, as the console will see it (tuples become lists, and so on).
    plain = json.loads(json.dumps(answer))
    return {**plain, ANSWER_SIGNATURE: _mac(key, _answer_message(task_id, plain))}


def verify_answer(*, key: str, task_id: str, answer: Any) -> dict[str, Any]:
    """The answer without its signature, or SignatureRefused when it is not the agent's."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get(ANSWER_SIGNATURE), str):
        raise SignatureRefused("the answer is not signed by the front-end's agent")
    expected = _mac(key, _answer_message(task_id, answer))
    if not hmac.compare_digest(expected, answer[ANSWER_SIGNATURE]):
        raise SignatureRefused("the answer's signature does not match the front-end's key")
    return {k: v for k, v in answer.items() if k != ANSWER_SIGNATURE}


def _mac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign(*, key: str, task: str, task_id: str, queue: str, kwargs: Mapping[str, Any], expires_at: int) -> dict:
    """The header value for a task sent to ``queue`` with keyword arguments ``kwargs``."""
    if not key:
        raise ValueError("no key to sign with")
    message = canonical(task=task, task_id=task_id, queue=queue, args=(), kwargs=kwargs, expires_at=expires_at)
    return {"v": VERSION, "exp": int(expires_at), "sig": _mac(key, message)}


def verify(
    *,
    key: str,
    auth: Any,
    task: str,
    task_id: str,
    queue: str | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    now: float,
) -> int:
    """Check a received task; return its expiry (epoch seconds) or raise SignatureRefused.

    ``queue`` is the queue the message came from (its routing key): a message signed for another
    front-end's queue is refused even before its signature is looked at.
    """
    if not isinstance(auth, Mapping) or "sig" not in auth or "exp" not in auth:
        raise SignatureRefused("the message is not signed by the console")
    if auth.get("v") != VERSION:
        raise SignatureRefused(f"unknown signature version {auth.get('v')!r}")
    if not isinstance(task_id, str) or not TASK_ID_RE.match(task_id):
        raise SignatureRefused("the message has no usable task id")
    try:
        expires_at = int(auth["exp"])
    except (TypeError, ValueError):
        raise SignatureRefused("the signature has no valid expiry") from None
    signed_queue = queue or ""
    message = canonical(task=task, task_id=task_id, queue=signed_queue, args=args, kwargs=kwargs, expires_at=expires_at)
    if not isinstance(auth["sig"], str) or not hmac.compare_digest(_mac(key, message), auth["sig"]):
        # Wrong key, another front-end's queue, changed arguments: one answer for all, so that a
        # forger learns nothing about which part was wrong.
        raise SignatureRefused("the signature does not match this front-end's key")
    if now > expires_at:
        raise SignatureRefused(f"the signed message expired {int(now - expires_at)} s ago")
    if expires_at > now + DEFAULT_VALIDITY_S + MIN_VALIDITY_S:
        raise SignatureRefused("the signature claims to be valid for longer than the console ever signs")
    if args:
        raise SignatureRefused("agent tasks take keyword arguments only")
    return expires_at


# --- requests from the agent to the console -------------------------------------------------------

REQUEST_HEADER = "X-Lifetime-Agent-Signature"
REQUEST_VALIDITY_S = 60


def _request_message(*, path: str, expires_at: int) -> bytes:
    body = {"v": VERSION, "path": path, "exp": int(expires_at)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_request(*, key: str, path: str, now: float) -> str:
    """The header an agent sends with a request for something only its front-end may read (its
    environment's settings; the path names the front-end): ``<expiry>:<HMAC of path and expiry>``."""
    expires_at = int(now) + REQUEST_VALIDITY_S
    return f"{expires_at}:{_mac(key, _request_message(path=path, expires_at=expires_at))}"


def verify_request(*, key: str, header: str, path: str, now: float) -> None:
    """SignatureRefused unless ``header`` signs ``path`` with ``key`` and has not expired."""
    try:
        raw_exp, sig = header.split(":", 1)
        expires_at = int(raw_exp)
    except ValueError:
        raise SignatureRefused("the request is not signed by a front-end's agent") from None
    expected = _mac(key, _request_message(path=path, expires_at=expires_at))
    if not hmac.compare_digest(expected, sig):
        raise SignatureRefused("the request's signature does not match the front-end's key")
    if now > expires_at or expires_at > now + REQUEST_VALIDITY_S + MIN_VALIDITY_S:
        raise SignatureRefused("the request's signature expired")
