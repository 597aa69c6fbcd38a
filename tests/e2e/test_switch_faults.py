"""The switch stays all or nothing whatever stops it: a front-end the console cannot even send the
switch to, and the stage worker killed while a slow health check holds the switch in flight."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.actors import Actor
from deployments.models import DeploymentPlan, PlanState, StageState
from deployments.plans import services as plans
from deployments.state import machine
from environments.models import FrontEnd
from tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _prepared_upgrade(engine):
    engine.start_worker()
    engine.start_beat()
    engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.1.0")])
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    return engine.wait(plan, PlanState.PREPARED)


def test_a_front_end_that_cannot_be_sent_the_switch_leaves_every_front_end_on_the_old_version(engine):
    plan = _prepared_upgrade(engine)
    # The second front-end's agent key can no longer be read (a rotated secret key, a damaged row):
    # sending it anything raises inside the console, after the first front-end was sent its switch.
    second = engine.frontends["Production"][1].row
    FrontEnd.objects.filter(pk=second.pk).update(agent_key_encrypted="damaged")

    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, *machine.FINAL, timeout_s=120)

    assert plan.state == PlanState.FINISHED_WITH_ERRORS
    stage = plan.stages.get(kind="continue")
    assert stage.status == StageState.FAILED
    assert f"Switch failed on front-end {second.name}: could not be sent agent.switch" in stage.explanation
    assert "Every front-end was put back" in stage.explanation
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    assert engine.running("Production") == {"hr_core": "1.0.0"}


class _SlowHealth(BaseHTTPRequestHandler):
    """A front-end that takes a while to come up after its switch: 503 for the first seconds after
    the first health check, 200 after."""

    slow_for_s = 5.0
    first_at: float | None = None

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        cls = type(self)
        if cls.first_at is None:
            cls.first_at = time.monotonic()
        ready = time.monotonic() - cls.first_at > cls.slow_for_s
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_stage_worker_killed_while_the_switch_is_in_flight_ends_with_every_front_end_new(engine):
    plan = _prepared_upgrade(engine)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _SlowHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        slow = engine.frontends["Production"][1].row
        FrontEnd.objects.filter(pk=slow.pk).update(health_url=f"http://127.0.0.1:{server.server_port}/_health")

        plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
        # The fast front-end switched; the slow one holds the switch in flight on its health check.
        deadline = time.monotonic() + 60
        while engine.answers("Production", "/hr_core")[0] != "hr_core 1.1.0":
            assert time.monotonic() < deadline, "the switch never started"
            time.sleep(0.05)
        assert DeploymentPlan.objects.get(pk=plan.pk).state == PlanState.APPLYING
        engine.worker.kill()
        engine.start_worker()

        plan = engine.wait(plan, *machine.FINAL, timeout_s=120)
    finally:
        server.shutdown()

    assert plan.state in {PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS}, plan.state
    stages = list(plan.stages.filter(kind="continue").order_by("attempt"))
    assert [s.status for s in stages] == [StageState.ERRORED, StageState.SUCCEEDED]
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert engine.running("Production") == {"hr_core": "1.1.0"}
    log = "\n".join(plan.log_lines.values_list("message", flat=True))
    assert "put back" in log
