"""A stage attempt's proof of life: a PostgreSQL session advisory lock on its own connection.

The attempt takes the lock (keyed by its plan) before it claims its stage and holds it on a
dedicated connection for as long as it runs; the heartbeat beats on that same connection. When the
worker's process dies, or the database drops the connection, PostgreSQL releases the lock by
itself: "dead" is a fact the reaper reads with ``pg_try_advisory_xact_lock``, not a guess from a
missed beat. The heartbeat survives database errors: it reconnects, takes its lock again and keeps
beating, and says so in the log. When it finds its stage is no longer running (the reaper declared
it lost while the database was away), the attempt is fenced: every later write of it is refused by
the state module.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg2
from django.conf import settings
from django.db import connections
from django.utils import timezone

from deployments.models import Stage
from deployments.state.machine import StageState

logger = logging.getLogger(__name__)

# The first half of the two-int advisory lock key: "LT" (LifeTime) stage leases. The second half is
# the plan's id: one attempt of one plan's stages at a time.
LEASE_CLASS = 0x4C54
HEARTBEAT_SECONDS = getattr(settings, "STAGE_HEARTBEAT_SECONDS", 5)


def application_name(stage_id: int) -> str:
    """What ``pg_stat_activity`` shows for an attempt's lease connection."""
    return f"lifetime stage {stage_id} lease"


def lease_is_free(cursor: Any, plan_id: int) -> bool:
    """Inside the caller's transaction: True when no attempt of the plan holds its lease (the lock
    is then held by the caller until its transaction ends, so no attempt takes it meanwhile)."""
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LEASE_CLASS, plan_id])
    return bool(cursor.fetchone()[0])


class Lease:
    """The attempt's lease connection and the heartbeat thread that beats on it."""

    def __init__(self, *, stage_id: int, plan_id: int) -> None:
        self.stage_id = stage_id
        self.plan_id = plan_id
        self.pid: int | None = None
        self.reconnects = 0
        self.fenced = threading.Event()
        self._conn: Any = None
        self._holding = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{stage_id}", daemon=True)

    # --- the connection and its lock ----------------------------------------------------------

    def _connect(self) -> Any:
        params = dict(connections["default"].get_connection_params())
        params.pop("cursor_factory", None)
        params["application_name"] = application_name(self.stage_id)
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn

    def _take(self) -> bool:
        """Connect if needed and try to take the lock once; True when this attempt holds it."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        with self._conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s), pg_backend_pid()", [LEASE_CLASS, self.plan_id])
            taken, pid = cursor.fetchone()
        if taken:
            self.pid = pid
        self._holding = bool(taken)
        return self._holding

    def acquire(self, *, timeout_s: float) -> bool:
        """Take the plan's lease, waiting up to ``timeout_s`` for an attempt whose process or
        connection just died to be let go by the database. False: another attempt still lives."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self._take():
                    return True
            except psycopg2.Error as exc:
                logger.warning("stage %s: cannot take its lease yet (%s)", self.stage_id, _first_line(exc))
                self._close()
            if time.monotonic() >= deadline:
                self._close()
                return False
            time.sleep(min(1.0, max(0.1, deadline - time.monotonic())))

    def _close(self) -> None:
        self._holding = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    # --- the heartbeat --------------------------------------------------------------------------

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_SECONDS * 2)
        # Closing the connection releases the lock: the plan's next attempt may start.
        self._close()

    def _beat(self) -> None:
        table = Stage._meta.db_table
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                if not self._holding:
                    if not self._take():
                        # Somebody holds the plan's lease: the reaper's brief check, or a newer
                        # attempt if this one was declared lost. The stage's status says which.
                        if not self._still_running():
                            self._fence()
                            return
                        continue
                    self.reconnects += 1
                    logger.warning(
                        "heartbeat of stage %s reconnected to the database (backend %s) and holds its lease again",
                        self.stage_id,
                        self.pid,
                    )
                    with self._conn.cursor() as cursor:
                        cursor.execute(f"UPDATE {table} SET lease_pid = %s WHERE id = %s", [self.pid, self.stage_id])
                with self._conn.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {table} SET heartbeat_at = %s WHERE id = %s AND status = %s",
                        [timezone.now(), self.stage_id, StageState.RUNNING],
                    )
                    beat = cursor.rowcount == 1
                if not beat:
                    self._fence()
                    return
            except psycopg2.Error as exc:
                # A database restart, a fail-over, a terminated backend: reconnect on the next beat.
                logger.warning(
                    "heartbeat of stage %s lost its database connection (%s); reconnecting",
                    self.stage_id,
                    _first_line(exc),
                )
                self._close()
            except Exception:  # a heartbeat must never take the stage down, nor stop beating
                logger.exception("heartbeat of stage %s failed; it keeps beating", self.stage_id)

    def _still_running(self) -> bool:
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT status FROM {Stage._meta.db_table} WHERE id = %s", [self.stage_id])
            row = cursor.fetchone()
        return row is not None and row[0] == StageState.RUNNING

    def _fence(self) -> None:
        logger.warning(
            "stage %s is no longer running under this attempt (declared lost meanwhile): its writes are refused",
            self.stage_id,
        )
        self.fenced.set()
        self._close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
