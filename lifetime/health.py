"""Health endpoints for load balancers and process supervisors.

* ``/health/live``: the process answers (no database, no Redis): restart it when this fails.
* ``/health/ready``: PostgreSQL and Redis answer: send it requests only then; 503 naming which is
  down otherwise. ``/healthz`` is the same answer (kept for existing checks).

Neither needs signing in, and neither says more than up or down (no host, user or error text).
"""

from __future__ import annotations

import functools
import logging
import time

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("lifetime.health")


@functools.lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def _postgresql() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("select 1")
            return cursor.fetchone() == (1,)
    except DatabaseError as exc:
        logger.warning("readiness: PostgreSQL does not answer (%s)", type(exc).__name__)
        # A broken connection is not reused by the next request.
        connection.close_if_unusable_or_obsolete()
        return False


def _redis_answers() -> bool:
    try:
        return bool(_redis(settings.REDIS_URL).ping())
    except redis.RedisError as exc:
        logger.warning("readiness: Redis does not answer (%s)", type(exc).__name__)
        return False


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    checks = {"postgresql": "ok" if _postgresql() else "down", "redis": "ok" if _redis_answers() else "down"}
    ok = all(state == "ok" for state in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks, "seconds": round(time.monotonic() - started, 3)},
        status=200 if ok else 503,
    )
