"""The Continue estimate's inputs and records: throughputs per target, timings of past executions.

``steps/sql_estimate.py`` computes; this module knows where the numbers live (``SqlTiming`` rows)
and when to measure the rehearsal server again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.utils import timezone

from deployments.models import SqlTiming
from deployments.statements.parse import CATALOG
from deployments.steps import sql_estimate
from deployments.steps.sql_estimate import Throughput
from environments.models import Environment

logger = logging.getLogger(__name__)

HISTORY_RUNS = 20  # the last runs of each kind of work on a target
REHEARSAL_MEASUREMENT_MAX_AGE = dt.timedelta(days=7)


def throughputs_for(environment: Environment) -> dict[str, Throughput]:
    """Per kind of cost: the target's own history, else the rehearsal server's measurement, else a guess."""
    out = sql_estimate.default_throughputs()
    measured = _rehearsal_throughputs()
    out.update(measured)
    for cost in list(out):
        rows = list(
            SqlTiming.objects.filter(
                environment=environment, cost=cost, bytes__gte=sql_estimate.MIN_CALIBRATION_BYTES
            ).values_list("bytes", "seconds")[:HISTORY_RUNS]
        )
        found = sql_estimate.throughput_from_runs(rows, basis="target")
        if found is not None:
            out[cost] = found
    return out


def _rehearsal_throughputs() -> dict[str, Throughput]:
    since = timezone.now() - REHEARSAL_MEASUREMENT_MAX_AGE
    rows = list(SqlTiming.objects.filter(environment__isnull=True, source="rehearsal", at__gte=since))
    if not rows:
        rows = measure_rehearsal_server()
    out = {}
    for cost in {r.cost for r in rows}:
        found = sql_estimate.throughput_from_runs(
            [(r.bytes, r.seconds) for r in rows if r.cost == cost], basis="rehearsal"
        )
        if found is not None:
            # The rehearsal server's disks are not the target's: the pessimistic end is halved again.
            out[cost] = Throughput(
                typical=found.typical,
                pessimistic=found.pessimistic / sql_estimate.REHEARSAL_SLOWDOWN,
                basis="rehearsal",
                runs=found.runs,
            )
    return out


def measure_rehearsal_server() -> list[SqlTiming]:
    """Measure the kinds of work on the rehearsal server (a few seconds, at most once a week)."""
    from django.conf import settings

    from deployments.steps.sql_execute import RehearsalServer

    server = RehearsalServer.from_settings()
    try:
        results = sql_estimate.measure_on_server(server.admin_dsn, rows=settings.REHEARSAL_CALIBRATION_ROWS)
    except Exception:  # no rehearsal server: the estimate says it is a guess
        logger.warning("could not measure the rehearsal server", exc_info=True)
        return []
    return [
        SqlTiming.objects.create(environment=None, cost=cost, bytes=size, seconds=seconds, source="rehearsal")
        for cost, (size, seconds) in results.items()
    ]


def record_runs(environment: Environment, runs: Iterable[Any], estimates: Sequence[dict[str, Any] | None]) -> int:
    """Keep how fast each expensive statement of a Continue went on this target: the next estimate
    there is calibrated from it. ``estimates`` line up with ``runs`` (the statement's estimate)."""
    rows = []
    for run, estimate in zip(runs, estimates, strict=False):
        if not estimate or estimate.get("cost") in (None, CATALOG) or run.lock_waits:
            continue
        size = int(estimate.get("bytes_typical") or 0)
        if size < sql_estimate.MIN_CALIBRATION_BYTES or run.seconds <= 0:
            continue
        rows.append(
            SqlTiming(
                environment=environment, cost=estimate["cost"], bytes=size, seconds=run.seconds, source="continue"
            )
        )
    SqlTiming.objects.bulk_create(rows)
    return len(rows)
