"""The whole engine, really started: the console over HTTP (live_server), a Celery stage worker,
one agent and one front-end server per front-end, Redis and PostgreSQL (the console's test
database and one application database per environment). Tests drive it as people do: through the
plan services, the pages or the API, and check what users check: statuses, logs, the versions the
front-ends answer over HTTP, the tables in the target database."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from kombu import pools as kombu_pools

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.models import ApplicationVersion, DeploymentPlan, RunningVersion
from deployments.plans import services as plans
from deployments.state.machine import PlanState
from environments import services as env_services
from environments.models import AccessLevel, Environment
from examples.build import FORMATS, bundle_files, pack
from lifetime.celery import app as celery_app
from tests.agents.conftest import FrontEndHosts, RealFrontEnd
from tests.conftest import make_user
from tests.processes import Beat, RedisServer, StageWorker, console_env

pytestmark = pytest.mark.e2e

EXAMPLE_MODULES = 4


@functools.cache
def example_bundle(app: str, version: str) -> bytes:
    return pack(bundle_files(app, version, modules=EXAMPLE_MODULES), FORMATS[app])


def table_exists(env: Environment, schema: str, table: str) -> bool:
    conn = psycopg2.connect(env.app_db_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass(%s)", [f"{schema}.{table}"])
            return cur.fetchone()[0] is not None
    finally:
        conn.close()


def schema_columns(env: Environment, schema: str) -> list[tuple]:
    conn = psycopg2.connect(env.app_db_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select table_name, column_name, data_type, character_maximum_length from information_schema.columns"
                " where table_schema = %s order by 1, 2",
                [schema],
            )
            return cur.fetchall()
    finally:
        conn.close()


@dataclasses.dataclass
class Engine:
    settings: object
    console_url: str
    hosts: FrontEndHosts
    tmp_path: Path
    release: object
    worker: StageWorker | None = None
    beat: Beat | None = None
    frontends: dict[str, list[RealFrontEnd]] = dataclasses.field(default_factory=dict)
    environments: dict[str, Environment] = dataclasses.field(default_factory=dict)
    worker_env_extra: dict[str, str] = dataclasses.field(default_factory=dict)

    # --- processes ---------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return console_env(
            self.settings,
            console_url=self.console_url,
            extra={
                "STAGE_HEARTBEAT_SECONDS": "1",
                "STAGE_STALE_SECONDS": "5",
                "STAGE_REAP_SECONDS": "2",
                **self.worker_env_extra,
            },
        )

    def start_worker(self) -> StageWorker:
        self.worker = StageWorker(self._env())
        self.hosts.processes.append(self.worker.start())
        self.worker.wait_ready()
        return self.worker

    def start_beat(self) -> Beat:
        self.beat = Beat(self._env(), schedule_dir=self.tmp_path)
        self.hosts.processes.append(self.beat.start())
        return self.beat

    # --- landscape -----------------------------------------------------------------------------

    def environment(
        self, name: str, *, order: int, two_stage: bool, frontends: int = 2, app_db: str = ""
    ) -> Environment:
        env = env_services.save_environment(
            actor=Actor.person(self.hosts.actor),
            data={
                "name": name,
                "order": order,
                "kind": "Production" if two_stage else "Test",
                "two_stage_deployments": two_stage,
                "window_days": list(range(7)),
                "window_start": dt.time(2, 0),
                "window_minutes": 120,
                "window_timezone": "UTC",
            },
            app_db_dsn=app_db or None,
        )
        env_services.set_access(
            actor=Actor.system("test"), user=self.release, environment=env, level=AccessLevel.DEPLOY
        )
        if frontends:
            self.frontends[name] = self.hosts.start(env, frontends)
        self.environments[name] = env
        return env

    def version(self, app: str, version: str) -> ApplicationVersion:
        existing = ApplicationVersion.objects.filter(application__name=app, version=version).first()
        return existing or catalog.register_bundle(
            data=example_bundle(app, version), actor=Actor.person(self.hosts.actor)
        )

    # --- deployments ---------------------------------------------------------------------------

    def plan(self, source: str, target: str, versions: list[ApplicationVersion]) -> DeploymentPlan:
        return plans.create_plan(
            actor=Actor.person(self.release),
            source=self.environments[source],
            target=self.environments[target],
            operations=[plans.Operation(v.application, v) for v in versions],
            notes="end-to-end test",
        )

    def wait(self, plan: DeploymentPlan, *states: str, timeout_s: float = 120) -> DeploymentPlan:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            plan.refresh_from_db()
            if plan.state in states:
                return plan
            if plan.is_final:
                break
            time.sleep(0.2)
        log = "\n".join(f"{line.level}: {line.message}" for line in plan.log_lines.order_by("seq"))
        worker_log = self.worker.log()[-4000:] if self.worker else ""
        raise AssertionError(f"plan is {plan.state}, wanted {states}\n--- plan log\n{log}\n--- worker\n{worker_log}")

    def deploy(self, source: str, target: str, versions: list[ApplicationVersion]) -> DeploymentPlan:
        """Deploy all the way, in one or two stages as the target says."""
        plan = self.plan(source, target, versions)
        plans.start_plan(actor=Actor.person(self.release), plan=plan)
        if self.environments[target].two_stage_deployments:
            self.wait(plan, PlanState.PREPARED)
            plans.continue_plan(actor=Actor.person(self.release), plan=plan)
        return self.wait(plan, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)

    def answers(self, env: str, path: str) -> list[str]:
        """What every front-end of ``env`` answers at ``path`` (first line of the body)."""
        out = []
        for fe in self.frontends[env]:
            status, body = fe.answer(path)
            out.append(body.splitlines()[0] if status == 200 and body else f"HTTP {status}")
        return out

    def running(self, env: str) -> dict[str, str]:
        return dict(
            RunningVersion.objects.filter(environment=self.environments[env]).values_list(
                "application__name", "version__version"
            )
        )


@pytest.fixture
def engine(transactional_db, live_server, tmp_path, settings, admin_user, app_databases) -> Iterator[Engine]:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    # Stale messages of other runs must not reach this run's worker.
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("stages")
    hosts = FrontEndHosts(tmp_path=tmp_path, console_url=live_server.url, actor=admin_user)
    release = make_user("release")
    eng = Engine(settings=settings, console_url=live_server.url, hosts=hosts, tmp_path=tmp_path, release=release)
    eng.app_databases = app_databases
    try:
        eng.environment("Development", order=1, two_stage=False, frontends=0, app_db=app_databases.create())
        yield eng
    finally:
        hosts.stop()


def point_celery_at(url: str | None) -> None:
    """This process's Celery app (the tests' sends and the console's, live_server included) on
    ``url`` from now on (None: back on the settings' Redis): the environment variables Celery reads
    before any configuration, and no pooled broker connection nor result backend of before."""
    for key in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        if url is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = url
    if url is not None:
        assert celery_app.conf.broker_url == celery_app.conf.result_backend == url
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
        celery_app._pool = None
    celery_app.amqp._producer_pool = None
    # kombu keeps its producer pools in a registry of its own, keyed by the broker's address: the
    # one of that address from before would hand out connections of the pool just closed.
    kombu_pools.reset()
    # The result backend of before stops listening now, while its Redis still runs (otherwise it
    # keeps trying to reconnect to a Redis the test has stopped).
    backend = celery_app._backend_cache or getattr(celery_app._local, "backend", None)
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        with contextlib.suppress(Exception):
            consumer.stop()
        # Results still pending then are not listened for any more (no unsubscribe, no reconnect).
        consumer._pubsub = None
        consumer.subscribed_to = set()
    celery_app._backend_cache = None
    celery_app._local.__dict__.pop("backend", None)


@pytest.fixture
def private_redis(request, tmp_path, settings) -> Iterator[RedisServer]:
    """A redis-server of the test's own (append-only file, in the test's folder, on a free port),
    which the test may flush or restart. The workers, beat and agents the test starts afterwards,
    and this process's Celery app, use it. Request it before ``engine``. Parametrized indirectly
    with False, it keeps no data across a restart."""
    server = RedisServer(folder=tmp_path / "redis", keeps_data=getattr(request, "param", True))
    server.start()
    server.wait_ready()
    settings.REDIS_URL = server.url
    point_celery_at(server.url)
    try:
        yield server
    finally:
        point_celery_at(None)
        server.stop()
