"""Redis loses its data while a Continue runs on Production: ``FLUSHALL`` on the engine's own Redis
(a private redis-server), once while Continue's SQL runs and once while the switch is in flight.
Nothing is mixed (every front-end runs all old or all new), the plan's final status says what the
front-ends run, and the script ran at most once."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import pytest
import redis

from core.actors import Actor
from deployments.models import DeploymentPlan, PlanState
from deployments.plans import services as plans
from deployments.stages import drift
from deployments.state import machine
from environments.models import FrontEnd
from tests.e2e.conftest import table_exists
from tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _own_redis(private_redis):
    """Before ``engine``: its worker, beat and agents run on the private Redis."""
    return private_redis


def _applied_scripts(env) -> list[tuple]:
    conn = psycopg2.connect(env.app_db_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("select application, script from lifetime_meta.applied_scripts order by 1, 2")
            return cur.fetchall()
    finally:
        conn.close()


class _SlowHealth(BaseHTTPRequestHandler):
    """A front-end that answers 503 for its first seconds after its switch: it holds the switch in
    flight long enough for the fault to land inside it."""

    slow_for_s = 4.0
    first_at: float | None = None

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        cls = type(self)
        if cls.first_at is None:
            cls.first_at = time.monotonic()
        self.send_response(200 if time.monotonic() - cls.first_at > cls.slow_for_s else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _until(condition, *, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_redis_flushed_during_the_sql_and_during_the_switch_leaves_no_front_end_mixed(engine, private_redis):
    engine.start_worker()
    engine.start_beat()
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    scripts_before = _applied_scripts(prod)
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.PREPARED)
    # A slow statement keeps Continue in its SQL for a while: the first flush lands there.
    sql = plan.generated_sql.get()
    statements = list(sql.statements)
    statements.insert(
        1, {"sql": "SELECT pg_sleep(5)", "kind": "script", "source": "sql/slow.sql", "flags": [], "line": 1}
    )
    type(sql).objects.filter(pk=sql.pk).update(statements=statements)
    _SlowHealth.first_at = None
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _SlowHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slow = engine.frontends["Production"][1].row
    FrontEnd.objects.filter(pk=slow.pk).update(health_url=f"http://127.0.0.1:{server.server_port}/_health")
    flushes = redis.Redis.from_url(private_redis.url)
    try:
        plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
        _until(
            lambda: DeploymentPlan.objects.get(pk=plan.pk).point_of_no_return_at is not None,
            what="Continue never reached its SQL",
        )
        time.sleep(1)
        assert DeploymentPlan.objects.get(pk=plan.pk).state == PlanState.APPLYING
        assert flushes.flushall()
        # The fast front-end switched; the slow one holds the switch in flight on its health check.
        _until(lambda: engine.answers("Production", "/hr_core")[0] == "hr_core 1.1.0", what="the switch never started")
        assert not DeploymentPlan.objects.get(pk=plan.pk).is_final
        assert flushes.flushall()
        plan = engine.wait(plan, *machine.FINAL, timeout_s=120)
    finally:
        server.shutdown()

    time.sleep(2)  # a revert sent to a front-end lands there
    answers = engine.answers("Production", "/hr_core")
    assert len(set(answers)) == 1, f"mixed: {answers}"
    if plan.state in {PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS}:
        assert answers == ["hr_core 1.1.0", "hr_core 1.1.0"]
        assert engine.running("Production") == {"hr_core": "1.1.0"}
    else:
        assert answers == ["hr_core 1.0.0", "hr_core 1.0.0"], (plan.state, answers)
        assert engine.running("Production") == {"hr_core": "1.0.0"}
    # The SQL commits before the switch: whatever the switch's outcome, its script ran exactly once.
    assert table_exists(prod, "hr_core", "payslip")
    after = _applied_scripts(prod)
    assert len(after) == len(set(after)) == len(scripts_before) + 1
    assert drift.check_frontends(environment=prod) == []
    # What this run gave, for whoever reads the test's output.
    print(f"final: {plan.state}, attempts: {plan.stages.filter(kind='continue').count()}")


def test_an_upload_while_redis_is_down_fails_with_a_sentence_and_touches_nothing(engine, private_redis):
    """Prepare's upload with the broker gone: each front-end's upload is a failure the step names
    (the plan then says so), never an unexpected error; no front-end is sent anything."""
    from deployments.steps import ListLog, StepFailed
    from deployments.steps.upload import Binary, upload_binaries

    prod = engine.environment("Production", order=3, two_stage=True)
    frontends = list(prod.frontends.order_by("name"))
    private_redis.stop()
    started = time.monotonic()
    with pytest.raises(StepFailed) as failed:
        upload_binaries(
            frontends=frontends,
            binaries=[Binary(application="hr_core", version="1.1.0", sha256="ab" * 32)],
            log=ListLog(),
            timeout_s=30,
        )
    # The broker client retries each send a few seconds before it gives up: the step still ends.
    assert time.monotonic() - started < 120
    sentence = failed.value.message
    assert sentence.startswith("Upload failed on front-end ")
    assert "message broker" in sentence and "The running versions are untouched." in sentence
    uploads = failed.value.detail["uploads"]
    assert len(uploads) == len(frontends) and not any(u["ok"] for u in uploads)
