"""Sessions read from Redis, kept in PostgreSQL.

Django's ``cached_db`` engine: every write goes to PostgreSQL (the source of truth) and to the
``sessions`` cache, a Redis shared by every web process, so that a sign-out in one process is seen
by all of them at once (a cache in each process would let a signed-out session go on answering
polls elsewhere). A status page's poll then costs no session query.

Two differences from Django's engine, both for when Redis is away:

- a failed cache read, write or delete is logged and the request goes on with PostgreSQL alone
  (Django's engine raises when a new session's key is checked, on a write after a read from the
  database, and on a delete);
- a session is kept in the cache at most ``SESSION_CACHE_SECONDS`` (not its whole life), so that a
  sign-out whose cache delete failed while Redis was away ends there within that time. The idle and
  absolute limits (``core.session_limits``) are in the session's own data and hold either way.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.sessions.backends import cached_db, db

logger = logging.getLogger("django.contrib.sessions")


class SessionStore(cached_db.SessionStore):
    def _cache_seconds(self, expiry_age: int) -> int:
        return max(0, min(expiry_age, settings.SESSION_CACHE_SECONDS))

    def load(self) -> dict:
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            logger.warning("Session cache unavailable: read from the database")
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(self.cache_key, data, self._cache_seconds(self.get_expiry_age(expiry=stored.expire_date)))
        except Exception:
            logger.warning("Session cache unavailable: not cached")
        return data

    def exists(self, session_key: str) -> bool:
        try:
            if self._cache.get(self.cache_key_prefix + session_key) is not None:
                return True
        except Exception:
            logger.warning("Session cache unavailable: read from the database")
        return db.SessionStore.exists(self, session_key)

    def save(self, must_create: bool = False) -> None:
        db.SessionStore.save(self, must_create=must_create)
        try:
            self._cache.set(self.cache_key, self._session, self._cache_seconds(self.get_expiry_age()))
        except Exception:
            logger.warning("Session cache unavailable: not cached")

    def delete(self, session_key: str | None = None) -> None:
        db.SessionStore.delete(self, session_key)
        key = session_key or self.session_key
        if key is None:
            return
        try:
            self._cache.delete(self.cache_key_prefix + key)
        except Exception:
            logger.warning(
                "Session cache unavailable: a deleted session stays readable there for up to %s s",
                settings.SESSION_CACHE_SECONDS,
            )
