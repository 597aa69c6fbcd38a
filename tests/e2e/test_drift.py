"""An agent killed after it switched its front-end, then Redis restarted (a real restart of the
engine's own redis-server). A Redis that forgets its data on restart loses the revert waiting for
that agent: the front-end runs the new release while the console records the old one. Within a
minute the board shows it drifted, Prepare and Continue on Production refuse, and Put back repairs
it. The project's Redis (append-only file) keeps the revert, and the agent runs it when it is back."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.urls import reverse

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import DeploymentPlan, PlanState
from deployments.plans import services as plans
from deployments.stages import drift
from deployments.state import machine
from environments import services as env_services
from environments.models import AccessLevel, FrontEnd
from lifetime.celery import app as celery_app
from tests.conftest import PASSWORD, make_user
from tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class _NeverHealthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _agent_killed_after_switching(engine):
    """Continue to 1.1.0 on Production; fe2's agent killed after it moved its link, while its health
    check still held the switch in flight. The plan ends with errors, fe1 back on 1.0.0 and fe2's
    revert waiting in its queue."""
    engine.worker_env_extra["FRONTEND_CHECK_SECONDS"] = "5"
    engine.start_worker()
    engine.start_beat()
    engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    fe1, fe2 = engine.frontends["Production"]
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.PREPARED)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _NeverHealthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real_health = fe2.row.health_url
    FrontEnd.objects.filter(pk=fe2.row.pk).update(health_url=f"http://127.0.0.1:{server.server_port}/_health")
    try:
        plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
        deadline = time.monotonic() + 60
        while engine.answers("Production", "/hr_core")[1] != "hr_core 1.1.0":
            assert time.monotonic() < deadline, "fe2 never switched"
            time.sleep(0.05)
        fe2.agent.kill()
        plan = engine.wait(plan, *machine.FINAL, timeout_s=120)
    finally:
        server.shutdown()
    FrontEnd.objects.filter(pk=fe2.row.pk).update(health_url=real_health)
    assert plan.state == PlanState.FINISHED_WITH_ERRORS
    assert "a revert waits in its queue" in "\n".join(plan.log_lines.values_list("message", flat=True))
    return fe1, fe2


@pytest.mark.parametrize("private_redis", [False], indirect=True, ids=["redis-without-its-data"])
def test_an_agent_killed_after_switching_then_redis_restarted_shows_drift_that_put_back_repairs(private_redis, engine):
    fe1, fe2 = _agent_killed_after_switching(engine)

    # Redis restarted, and it kept nothing: the revert waiting in fe2's queue is gone.
    private_redis.restart()
    fe2.agent.start()
    fe2.agent.wait_ready(celery_app)
    restarted = time.monotonic()
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.1.0"]
    assert engine.running("Production") == {"hr_core": "1.0.0"}

    manager = make_user("manager")
    prod = engine.environments["Production"]
    env_services.set_access(actor=Actor.system("test"), user=manager, environment=prod, level=AccessLevel.MANAGE)
    client = Client()
    client.login(username=manager.username, password=PASSWORD)
    while 'data-drift="fe2"' not in client.get(reverse("deployments:board")).content.decode():
        assert time.monotonic() - restarted < 60, "the board never showed the drift"
        time.sleep(1)
    seen_after = time.monotonic() - restarted
    assert seen_after < 60

    # Prepare and Continue refuse on Production while fe2 drifted.
    again = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    with pytest.raises(drift.Drifted, match="Prepare is refused: Production does not run what the console recorded"):
        plans.start_plan(actor=Actor.person(engine.release), plan=again)
    DeploymentPlan.objects.filter(pk=again.pk).update(state=PlanState.PREPARED)
    with pytest.raises(drift.Drifted, match="Continue is refused"):
        plans.continue_plan(actor=Actor.person(engine.release), plan=again)
    DeploymentPlan.objects.filter(pk=again.pk).update(state=PlanState.SAVED)

    # Put back, from the environment page's button.
    response = client.post(reverse("deployments:frontend_put_back", args=[fe2.row.key]))
    assert response.status_code == 302
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    fe2.row.refresh_from_db()
    assert fe2.row.drift == []
    event = AuditEvent.objects.get(action="frontend.put_back")
    assert event.actor == manager and "Put back front-end fe2" in event.message
    plans.start_plan(actor=Actor.person(engine.release), plan=again)
    engine.wait(again, PlanState.PREPARED)


def test_an_agent_killed_after_switching_runs_its_revert_after_a_restart_of_a_redis_that_keeps_its_data(
    private_redis, engine
):
    fe1, fe2 = _agent_killed_after_switching(engine)

    # The project's Redis writes an append-only file: the revert is still in fe2's queue after the
    # restart, and the agent runs it as soon as it is back.
    private_redis.restart()
    fe2.agent.start()
    fe2.agent.wait_ready(celery_app)
    deadline = time.monotonic() + 30
    while engine.answers("Production", "/hr_core") != ["hr_core 1.0.0", "hr_core 1.0.0"]:
        assert time.monotonic() < deadline, engine.answers("Production", "/hr_core")
        time.sleep(0.2)
    assert engine.running("Production") == {"hr_core": "1.0.0"}
    assert drift.check_frontends(environment=engine.environments["Production"]) == []
