"""Service accounts: the API's clients (CI/CD pipelines), each a Django user without a password
authenticated by a bearer token.

A token is ``<prefix>.<secret>``: the prefix finds the account with an indexed lookup, the whole
token is compared as a sha256 digest in constant time. Only the digest is stored; the token is
shown once, when the account is created. Rights are the same per-environment rights as people's
(environments.access); the caller grants them with environments.services.set_access.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.models import ServiceAccount
from core.refusals import Refusal

TOKEN_PREFIX_TAG = "lt_"
# A pipeline polls every few seconds: writing last_used_at on every call would be one UPDATE per
# request for information nobody needs to the second.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{1,59}$")


class ServiceAccountRefused(Refusal):
    """The account cannot be created or changed as asked; the message says why."""


def _digest(token: str) -> str:
    # The secret carries 256 random bits: a plain digest is enough, a slow password hash would
    # only cost every API request time.
    return hashlib.sha256(token.encode()).hexdigest()


def _new_prefix() -> str:
    while True:
        prefix = TOKEN_PREFIX_TAG + secrets.token_hex(4)
        if not ServiceAccount.objects.filter(token_prefix=prefix).exists():
            return prefix


def create_service_account(*, actor: Actor, name: str, description: str = "") -> tuple[ServiceAccount, str]:
    """A new account and its token (returned once, never stored in clear)."""
    name = name.strip()
    if not NAME_RE.match(name):
        raise ServiceAccountRefused(
            "A service account name has 2 to 60 letters, digits, '.', '-' or '_', starting with a letter or digit."
        )
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(username__iexact=name).exists():
            raise ServiceAccountRefused(f"A user or service account named {name!r} already exists.")
        user = User(username=name, is_active=True)
        user.set_unusable_password()
        user.save()
        prefix = _new_prefix()
        token = f"{prefix}.{secrets.token_urlsafe(32)}"
        account = ServiceAccount.objects.create(
            user=user,
            description=description.strip()[:200],
            token_prefix=prefix,
            token_hash=_digest(token),
            created_by=actor.user,
        )
        audit.record(
            actor=actor,
            action="service_account.created",
            object_type="service_account",
            object_key=account.key,
            object_label=name,
            changes={"token_prefix": [None, prefix]},
        )
    return account, token


def revoke_service_account(*, actor: Actor, account: ServiceAccount) -> ServiceAccount:
    """The token stops working at once; the user is deactivated so that no right of it applies anywhere."""
    now = timezone.now()
    with transaction.atomic():
        revoked = ServiceAccount.objects.filter(pk=account.pk, revoked_at__isnull=True).update(revoked_at=now)
        account.refresh_from_db()
        if revoked:
            get_user_model().objects.filter(pk=account.user_id).update(is_active=False)
            audit.record(
                actor=actor,
                action="service_account.revoked",
                object_type="service_account",
                object_key=account.key,
                object_label=account.user.username,
            )
    return account


def authenticate(token: str) -> ServiceAccount | None:
    """The active account owning ``token``, or None (unknown, malformed, revoked)."""
    prefix, dot, _secret = token.partition(".")
    if not dot or not prefix.startswith(TOKEN_PREFIX_TAG) or len(prefix) > 12:
        return None
    digest = _digest(token)
    found = None
    for account in ServiceAccount.objects.select_related("user").filter(token_prefix=prefix):
        if hmac.compare_digest(account.token_hash, digest):
            found = account
    if found is None or found.revoked_at is not None or not found.user.is_active:
        return None
    now = timezone.now()
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
        ServiceAccount.objects.filter(pk=found.pk).update(last_used_at=now)
        found.last_used_at = now
    return found
