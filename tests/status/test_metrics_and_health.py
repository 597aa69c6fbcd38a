"""/metrics for Prometheus and the health endpoints for load balancers: what they say, who may read
them, and readiness answering 503 when PostgreSQL or Redis is really down."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from django.urls import reverse
from django.utils import timezone

from core.actors import Actor
from deployments.models import StageKind, StepKind
from deployments.plans import services as plans
from deployments.state.machine import PlanState, StageState
from environments.models import FrontEnd
from lifetime.celery import app as celery_app
from tests.processes import BIN, Process, _base_env, free_port
from tests.status.drive import PlanDriver
from tests.status.metrics_text import samples, value


@pytest.fixture
def metrics(client, settings):
    settings.METRICS_TOKEN = "scrape-token-for-tests"

    def scrape() -> dict:
        response = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-token-for-tests")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return samples(response.content.decode())

    return scrape


def test_metrics_count_plans_by_state_and_time_stages_steps_and_continue_against_the_window(
    metrics, production_plan, release_user, landscape
):
    production = landscape["Production"]
    PlanDriver(production_plan(), actor=release_user).prepare()
    done = production_plan("second")
    driver = PlanDriver(done, actor=release_user)
    before = metrics()
    assert value(before, "lifetime_plans", environment="Production", state=PlanState.SAVED) == 1
    assert value(before, "lifetime_plans", environment="Production", state=PlanState.PREPARED) == 1
    assert value(before, "lifetime_plans", environment="Test", state=PlanState.PREPARED) == 0
    assert value(before, "lifetime_environment_held", environment="Production") == 1
    assert value(before, "lifetime_deployment_window_seconds", environment="Production") == 7200
    assert value(before, "lifetime_deployment_window_seconds", environment="Test") is None
    assert value(before, "lifetime_continue_running_seconds", environment="Production") == 0

    # The first plan is aborted (it holds Production); the second goes all the way.
    first = production.plans_to.get(state=PlanState.PREPARED)
    plans.abort_plan(actor=Actor.person(release_user), plan=first, reason="make room")
    driver.prepare()
    stage = driver.continue_all()

    after = metrics()
    assert value(after, "lifetime_plans", environment="Production", state=PlanState.FINISHED_SUCCESSFUL) == 1
    assert value(after, "lifetime_plans", environment="Production", state=PlanState.ABORTED) == 1
    prepare_count = value(
        after, "lifetime_stage_duration_seconds_count", kind=StageKind.PREPARE, status=StageState.SUCCEEDED
    )
    assert prepare_count == 2
    assert (
        value(
            after,
            "lifetime_stage_duration_seconds_bucket",
            kind=StageKind.PREPARE,
            status=StageState.SUCCEEDED,
            le="+Inf",
        )
        == 2
    )
    assert value(after, "lifetime_step_duration_seconds_count", kind=StepKind.COMPILE) == 4
    assert value(after, "lifetime_step_duration_seconds_count", kind=StepKind.SWITCH) == 2
    stage.refresh_from_db()
    took = (stage.finished_at - stage.started_at).total_seconds()
    assert value(after, "lifetime_continue_duration_seconds_count", environment="Production") == 1
    assert value(after, "lifetime_continue_last_duration_seconds", environment="Production") == pytest.approx(took)
    assert value(after, "lifetime_continue_last_window_ratio", environment="Production") == pytest.approx(took / 7200)


def test_metrics_say_which_agents_answered_lately_and_how_long_each_queue_is(metrics, landscape, settings):
    production = landscape["Production"]
    fe1, fe2 = FrontEnd.objects.filter(environment=production).order_by("name")
    FrontEnd.objects.filter(pk=fe1.pk).update(last_seen_at=timezone.now())
    FrontEnd.objects.filter(pk=fe2.pk).update(last_seen_at=timezone.now() - timezone.timedelta(minutes=10))
    # Three messages nobody consumes, on fe2's queue (its agent is not running).
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(fe2.queue)
    for _ in range(3):
        celery_app.send_task("agent.ping", queue=fe2.queue, expires=60)

    found = metrics()
    assert value(found, "lifetime_agent_up", environment="Production", frontend="fe1") == 1
    assert value(found, "lifetime_agent_up", environment="Production", frontend="fe2") == 0
    assert value(found, "lifetime_agents_up", environment="Production") == 1
    assert value(found, "lifetime_agents", environment="Production") == 2
    assert value(found, "lifetime_agent_last_seen_seconds", environment="Production", frontend="fe2") >= 600
    assert value(found, "lifetime_redis_up") == 1
    assert value(found, "lifetime_queue_length", queue=fe2.queue) == 3
    assert value(found, "lifetime_queue_length", queue="stages") is not None
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(fe2.queue)


def test_metrics_need_their_token_and_never_show_a_secret(client, settings, landscape):
    settings.METRICS_TOKEN = "scrape-token-for-tests"
    assert client.get(reverse("metrics")).status_code == 401
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-token-for-tests")
    assert response.status_code == 200
    text = response.content.decode()
    for secret in (settings.AGENT_TOKEN, settings.SECRET_KEY, "scrape-token-for-tests"):
        assert secret not in text
    for env in landscape.values():
        assert env.app_db_dsn() not in text and "postgres://" not in text
        for fe in env.frontends.all():
            assert fe.agent_key() not in text
    # No token configured: only a developer's machine serves them.
    settings.METRICS_TOKEN = ""
    settings.DEV = False
    assert client.get(reverse("metrics")).status_code == 403
    settings.DEV = True
    assert client.get(reverse("metrics")).status_code == 200


def test_liveness_and_readiness_answer_without_signing_in(client, db):
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgresql": "ok", "redis": "ok"}
    assert client.get("/healthz").status_code == 200


class PrivateRedis(Process):
    """A Redis of the test's own on a free port: the machine's shared one is never stopped."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        super().__init__("redis", args, _base_env({}))

    def wait_ready(self) -> PrivateRedis:
        import redis

        for _ in range(100):
            try:
                redis.Redis(port=self.port).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis did not start:\n{self.log()}")


def test_readiness_answers_503_while_its_redis_is_down_and_200_once_it_is_back(client, db, settings):
    server = PrivateRedis().start().wait_ready()
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
        assert client.get("/health/ready").status_code == 200
        server.kill()
        down = client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["checks"] == {"postgresql": "ok", "redis": "down"}
        assert client.get("/health/live").status_code == 200
        server = PrivateRedis(server.port).start().wait_ready()
        assert client.get("/health/ready").status_code == 200
    finally:
        server.stop()


def test_a_web_process_whose_postgresql_is_down_is_live_but_not_ready(settings):
    port = free_port()
    closed = free_port()
    env = _base_env(
        {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed}/lifetime",
            "REDIS_URL": settings.REDIS_URL,
            "LIFETIME_DEV": "true",
        }
    )
    web = Process(
        "web-no-postgresql",
        [
            str(BIN / "gunicorn"),
            "lifetime.wsgi",
            "-c",
            "lifetime/gunicorn_conf.py",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
        ],
        env,
    ).start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or not web.running:
                    raise AssertionError(web.log()[-3000:]) from None
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        assert refused.value.code == 503
        assert json.loads(refused.value.read())["checks"] == {"postgresql": "down", "redis": "ok"}
    finally:
        web.stop()
