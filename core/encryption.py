"""Encryption at rest for secrets kept in the console's database.

Fernet (AES-128-CBC + HMAC) with the keys of ``FIELD_ENCRYPTION_KEY``; the first key encrypts,
all of them decrypt, so keys can be rotated without re-entering every secret.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored secret was encrypted with a key that is no longer configured."""


def _fernet_key(raw: str) -> bytes:
    # Accept a real Fernet key, or derive one from any passphrase.
    try:
        if len(base64.urlsafe_b64decode(raw.encode())) == 32:
            return raw.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest())


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def encrypt(plaintext: str) -> str:
    return _cipher(tuple(settings.FIELD_ENCRYPTION_KEYS)).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _cipher(tuple(settings.FIELD_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("the stored secret cannot be decrypted with the configured keys") from exc
