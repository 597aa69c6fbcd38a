"""``/metrics`` for Prometheus: the console's state as series named ``lifetime_…``.

Everything is read at scrape time from PostgreSQL (the source of truth, so every web process of
every host answers the same) and Redis (queue lengths): a scrape is a handful of aggregate
queries, no per-plan loop. Durations are histograms over every finished stage and step that is
still in the database (a plan removed by retention leaves them: Prometheus reads that as a reset).

Nothing secret is exported: names of environments, front-ends and queues, counts and seconds.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import logging
import time
from collections.abc import Iterable, Iterator, Sequence

import redis
from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from deployments.models import DeploymentPlan, GeneratedSql, Stage, StageKind, Step
from deployments.state import machine
from deployments.state.machine import PlanState
from deployments.status.board import AGENT_LATE
from environments.models import Environment, FrontEnd

logger = logging.getLogger("lifetime.metrics")

STAGE_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
STEP_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 2.5, 5, 15, 30, 60, 120, 300, 600, 1800)
# The queues of the console's own workers; each front-end's queue is added from the database.
CONSOLE_QUEUES = ("stages", "notifications")
# Kombu's Redis transport keeps a queue's messages of priority p > 0 under "<queue>\x06\x16<p>".
KOMBU_PRIORITY_KEYS = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _duration() -> ExpressionWrapper:
    return ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


def _histogram_rows(queryset, group: Sequence[str], buckets: Sequence[float]) -> list[dict]:
    """Per group: count, sum of seconds and cumulative count per bucket, in one aggregate query."""
    per_bucket = {
        f"le_{i}": Count("id", filter=Q(duration__lte=dt.timedelta(seconds=bound))) for i, bound in enumerate(buckets)
    }
    return list(
        queryset.filter(started_at__isnull=False, finished_at__isnull=False)
        .annotate(duration=_duration())
        .values(*group)
        .annotate(count=Count("id"), total=Sum("duration"), **per_bucket)
        .order_by(*group)
    )


def _add_histogram(family: HistogramMetricFamily, labels: list[str], row: dict, buckets: Sequence[float]) -> None:
    counts = [(_bound(bound), row[f"le_{i}"]) for i, bound in enumerate(buckets)]
    counts.append(("+Inf", row["count"]))
    total = row["total"].total_seconds() if row["total"] is not None else 0.0
    family.add_metric(labels, counts, sum_value=total)


def _bound(value: float) -> str:
    return str(float(value))


@functools.lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    # Short timeouts: a scrape must answer even when Redis does not.
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


class ConsoleCollector(Collector):
    """Collects every ``lifetime_…`` series at scrape time."""

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        now = timezone.now()
        # Their further windows prefetched: each one asks whether its window is open.
        environments = {
            env.pk: env for env in Environment.objects.order_by("order", "name").prefetch_related("windows")
        }
        yield from self._plans(environments)
        yield from self._stages()
        yield from self._steps()
        yield from self._windows(environments, now)
        frontends = list(FrontEnd.objects.filter(enabled=True).order_by("environment_id", "name"))
        yield from self._agents(environments, frontends, now)
        yield from self._queues(frontends)
        scrape = GaugeMetricFamily("lifetime_metrics_scrape_seconds", "Seconds this scrape took to compute.")
        scrape.add_metric([], time.monotonic() - started)
        yield scrape

    # --- plans ----------------------------------------------------------------------------------

    def _plans(self, environments: dict[int, Environment]) -> Iterable[Metric]:
        counts = {
            (row["target_id"], row["state"]): row["n"]
            for row in DeploymentPlan.objects.values("target_id", "state").annotate(n=Count("id")).order_by()
        }
        family = GaugeMetricFamily(
            "lifetime_plans",
            "Deployment plans by target environment and state (every state, zeros included).",
            labels=["environment", "state"],
        )
        for env in environments.values():
            for state in PlanState.values:
                family.add_metric([env.name, state], counts.get((env.pk, state), 0))
        yield family
        holding = GaugeMetricFamily(
            "lifetime_environment_held",
            "1 when a plan holds the environment (running, prepared, scheduled or suspended), else 0.",
            labels=["environment"],
        )
        for env in environments.values():
            held = sum(counts.get((env.pk, state), 0) for state in machine.HOLDING)
            holding.add_metric([env.name], 1 if held else 0)
        yield holding

    # --- stages and steps -------------------------------------------------------------------------

    def _stages(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            "lifetime_stage_duration_seconds",
            "Seconds from a stage's start to its end, by kind (prepare, continue) and how it ended.",
            labels=["kind", "status"],
        )
        for row in _histogram_rows(Stage.objects.all(), ["kind", "status"], STAGE_BUCKETS):
            _add_histogram(family, [row["kind"], row["status"]], row, STAGE_BUCKETS)
        yield family
        running = GaugeMetricFamily(
            "lifetime_stages_active", "Stages queued or running now, by kind and status.", labels=["kind", "status"]
        )
        active = {
            (row["kind"], row["status"]): row["n"]
            for row in Stage.objects.filter(status__in=machine.STAGE_ACTIVE)
            .values("kind", "status")
            .annotate(n=Count("id"))
            .order_by()
        }
        for kind in StageKind.values:
            for status in sorted(machine.STAGE_ACTIVE):
                running.add_metric([kind, status], active.get((kind, status), 0))
        yield running

    def _steps(self) -> Iterable[Metric]:
        # By kind alone: each kind belongs to one stage (compile to Prepare, switch to Continue, ...),
        # and a join to the stages would cost more than the rest of the scrape.
        family = HistogramMetricFamily(
            "lifetime_step_duration_seconds",
            "Seconds a step took (compile, generate SQL, upload, execute SQL, switch, ...), by kind.",
            labels=["kind"],
        )
        for row in _histogram_rows(Step.objects.all(), ["kind"], STEP_BUCKETS):
            _add_histogram(family, [row["kind"]], row, STEP_BUCKETS)
        yield family

    # --- Continue against the window ---------------------------------------------------------------

    def _windows(self, environments: dict[int, Environment], now: dt.datetime) -> Iterable[Metric]:
        continues = Stage.objects.filter(kind=StageKind.CONTINUE)
        by_env = HistogramMetricFamily(
            "lifetime_continue_duration_seconds",
            "Seconds each finished Continue took, by target environment: compare with the window's length.",
            labels=["environment"],
        )
        for row in _histogram_rows(continues, ["plan__target_id"], STAGE_BUCKETS):
            env = environments.get(row["plan__target_id"])
            if env is not None:
                _add_histogram(by_env, [env.name], row, STAGE_BUCKETS)
        yield by_env

        last: dict[int, float] = {}
        for target_id, seconds in (
            continues.filter(started_at__isnull=False, finished_at__isnull=False)
            .annotate(duration=_duration())
            .order_by("plan__target_id", "-finished_at")
            .distinct("plan__target_id")
            .values_list("plan__target_id", "duration")
        ):
            last[target_id] = seconds.total_seconds()
        running: dict[int, float] = {}
        for target_id, started_at in continues.filter(
            status__in=machine.STAGE_ACTIVE, started_at__isnull=False
        ).values_list("plan__target_id", "started_at"):
            running[target_id] = max(running.get(target_id, 0.0), (now - started_at).total_seconds())
        estimates: dict[int, list[float]] = {}
        for target_id, totals, rehearsal in GeneratedSql.objects.filter(plan__state__in=machine.WAITING).values_list(
            "plan__target_id", "estimate", "rehearsal_seconds"
        ):
            totals = totals or {}
            typical, pessimistic = estimates.setdefault(target_id, [0.0, 0.0])
            estimates[target_id] = [
                typical + float(totals.get("typical_s", rehearsal or 0.0)),
                pessimistic + float(totals.get("pessimistic_s", rehearsal or 0.0)),
            ]

        length = GaugeMetricFamily(
            "lifetime_deployment_window_seconds",
            "Length of the environment's deployment window.",
            labels=["environment"],
        )
        is_open = GaugeMetricFamily(
            "lifetime_deployment_window_open", "1 while the deployment window is open, else 0.", labels=["environment"]
        )
        remaining = GaugeMetricFamily(
            "lifetime_deployment_window_remaining_seconds",
            "Seconds left in the open window (0 when it is closed).",
            labels=["environment"],
        )
        last_family = GaugeMetricFamily(
            "lifetime_continue_last_duration_seconds",
            "Seconds the last finished Continue took.",
            labels=["environment"],
        )
        used = GaugeMetricFamily(
            "lifetime_continue_last_window_ratio",
            "The last finished Continue's duration as a fraction of the window's length (over 1: it did not fit).",
            labels=["environment"],
        )
        running_family = GaugeMetricFamily(
            "lifetime_continue_running_seconds",
            "Seconds the Continue running now has taken so far (0 when none runs): compare with the time left.",
            labels=["environment"],
        )
        estimate_family = GaugeMetricFamily(
            "lifetime_continue_sql_estimate_seconds",
            "The SQL estimate of the plan waiting to continue on the environment (typical and pessimistic).",
            labels=["environment", "bound"],
        )
        for env in environments.values():
            window_s = float(env.window_minutes or 0) * 60 if env.has_window else 0.0
            if env.has_window:
                length.add_metric([env.name], window_s)
                window = env.window_at(now)
                open_now = window is not None and window[0] <= now < window[1]
                is_open.add_metric([env.name], 1 if open_now else 0)
                remaining.add_metric([env.name], (window[1] - now).total_seconds() if open_now else 0.0)
            if env.pk in last:
                last_family.add_metric([env.name], last[env.pk])
                if window_s:
                    used.add_metric([env.name], last[env.pk] / window_s)
            running_family.add_metric([env.name], running.get(env.pk, 0.0))
            if env.pk in estimates:
                typical, pessimistic = estimates[env.pk]
                estimate_family.add_metric([env.name, "typical"], typical)
                estimate_family.add_metric([env.name, "pessimistic"], pessimistic)
        yield from (length, is_open, remaining, last_family, used, running_family, estimate_family)

    # --- agents and queues ------------------------------------------------------------------------

    def _agents(
        self, environments: dict[int, Environment], frontends: list[FrontEnd], now: dt.datetime
    ) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "lifetime_agent_up",
            f"1 when the front-end's agent answered in the last {int(AGENT_LATE.total_seconds())} s (beat asks every 30 s).",
            labels=["environment", "frontend"],
        )
        seen = GaugeMetricFamily(
            "lifetime_agent_last_seen_seconds",
            "Seconds since the front-end's agent last answered.",
            labels=["environment", "frontend"],
        )
        totals: dict[int, list[int]] = {env_id: [0, 0] for env_id in environments}
        for fe in frontends:
            env = environments.get(fe.environment_id)
            if env is None:
                continue
            since = (now - fe.last_seen_at).total_seconds() if fe.last_seen_at else None
            alive = since is not None and since <= AGENT_LATE.total_seconds()
            up.add_metric([env.name, fe.name], 1 if alive else 0)
            if since is not None:
                seen.add_metric([env.name, fe.name], since)
            totals[env.pk][0] += 1 if alive else 0
            totals[env.pk][1] += 1
        yield up
        yield seen
        agents_up = GaugeMetricFamily(
            "lifetime_agents_up", "Agents of enabled front-ends that answered lately.", labels=["environment"]
        )
        agents = GaugeMetricFamily("lifetime_agents", "Enabled front-ends (each has an agent).", labels=["environment"])
        for env_id, (alive, total) in totals.items():
            agents_up.add_metric([environments[env_id].name], alive)
            agents.add_metric([environments[env_id].name], total)
        yield agents_up
        yield agents

    def _queues(self, frontends: list[FrontEnd]) -> Iterable[Metric]:
        queues = [*CONSOLE_QUEUES, *sorted({fe.queue for fe in frontends if fe.queue})]
        redis_up = GaugeMetricFamily("lifetime_redis_up", "1 when Redis answered this scrape, else 0.")
        length = GaugeMetricFamily(
            "lifetime_queue_length", "Messages waiting in a queue (not yet taken by a worker).", labels=["queue"]
        )
        unacked = GaugeMetricFamily(
            "lifetime_tasks_unacknowledged", "Messages taken by a worker and not yet acknowledged (running tasks)."
        )
        try:
            client = _redis(settings.REDIS_URL)
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                for suffix in KOMBU_PRIORITY_KEYS:
                    pipe.llen(f"{queue}{suffix}")
            pipe.zcard("unacked_index")
            answers = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("metrics: Redis did not answer: %s", type(exc).__name__)
            redis_up.add_metric([], 0)
            yield redis_up
            return
        redis_up.add_metric([], 1)
        per_queue = len(KOMBU_PRIORITY_KEYS)
        for index, queue in enumerate(queues):
            length.add_metric([queue], sum(answers[index * per_queue : (index + 1) * per_queue]))
        unacked.add_metric([], answers[-1])
        yield redis_up
        yield length
        yield unacked


_REGISTRY = CollectorRegistry(auto_describe=False)
_REGISTRY.register(ConsoleCollector())


def render(accept: str = "") -> tuple[bytes, str]:
    """The exposition in the format the scraper asked for (Prometheus' text format by default)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(_REGISTRY), content_type


def _token_refusal(request: HttpRequest) -> HttpResponse | None:
    token = settings.METRICS_TOKEN
    if not token:
        if settings.DEV:
            return None
        return HttpResponse(
            "Metrics need METRICS_TOKEN to be set (Prometheus sends it as a bearer token).\n",
            status=403,
            content_type="text/plain",
        )
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        response = HttpResponse("A bearer token is needed for /metrics.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="lifetime-metrics"'
        return response
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return HttpResponse("Wrong metrics token.\n", status=403, content_type="text/plain")
    return None


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _token_refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = render(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(body, content_type=content_type)
