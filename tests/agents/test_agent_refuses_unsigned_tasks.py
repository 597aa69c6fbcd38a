"""An agent runs only what the console signed for it, in its own folder: whoever can write to the
broker cannot switch an environment. Real agents, a real broker, real links on disk."""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from celery import Celery
from django.conf import settings

from agent import signing
from agent.releases import current_release
from core.actors import Actor
from deployments.steps import ListLog, StepFailed
from deployments.steps.switch import enabled_frontends, switch_frontends
from deployments.steps.upload import Binary, upload_binaries
from environments import agents
from environments.models import FrontEnd

pytestmark = pytest.mark.e2e


def _two_versions(hosts, store_binary, *, environment=None, count: int = 1):
    environment = environment or hosts.environment()
    frontends = hosts.start(environment, count)
    v1 = Binary("hello", "1.0.0", store_binary("hello", "1.0.0"))
    v2 = Binary("hello", "2.0.0", store_binary("hello", "2.0.0"))
    upload_binaries(frontends=enabled_frontends(environment), binaries=[v1, v2], log=ListLog())
    switch_frontends(frontends=enabled_frontends(environment), releases={"hello": v1.release}, log=ListLog())
    return environment, frontends, v1, v2


@pytest.fixture
def intruder():
    """A plain Celery client that knows only the broker's address, as any front-end host does."""
    app = Celery("intruder", broker=settings.REDIS_URL, backend=settings.REDIS_URL, set_as_current=False)
    yield app
    app.close()


def _refusals(frontend: FrontEnd) -> list[dict]:
    agents.refresh_reports(environment=frontend.environment, timeout_s=10)
    frontend.refresh_from_db()
    return frontend.refusals()


def test_a_task_sent_without_the_consoles_key_changes_nothing_and_is_reported(
    frontend_hosts, store_binary, intruder, caplog
):
    _, (fe,), v1, v2 = _two_versions(frontend_hosts, store_binary)

    forged = intruder.send_task(
        "agent.switch",
        kwargs={"switch_id": "forged-switch", "links": {"hello": v2.release}, "releases_root": str(fe.root)},
        queue=fe.row.queue,
    )
    answer = forged.get(timeout=15)

    assert answer["ok"] is False and answer["refused"] is True
    assert "not signed by the console" in answer["error"]
    assert current_release(fe.root, "hello") == v1.release, "an unsigned switch moved a link"
    assert fe.answer("/hello/") == (200, "1.0.0\n")
    assert not (fe.root / ".switches" / "forged-switch.json").exists()
    refused = _refusals(fe.row)
    assert refused[0]["task"] == "agent.switch" and "not signed" in refused[0]["reason"]
    assert "refused agent.switch" in fe.agent.log() and "not signed by the console" in fe.agent.log()


def test_a_task_signed_with_another_frontends_key_is_refused(frontend_hosts, store_binary, intruder):
    """A Development host holds its own agent's key: it cannot drive a Production agent with it."""
    _, (prod,), v1, v2 = _two_versions(frontend_hosts, store_binary)
    development = frontend_hosts.environment("Development")
    (dev,) = frontend_hosts.start(development, 1)
    task_id = str(uuid.uuid4())
    kwargs = {"switch_id": "from-development", "links": {"hello": v2.release}}
    auth = signing.sign(
        key=dev.row.agent_key(),
        task="agent.switch",
        task_id=task_id,
        queue=prod.row.queue,
        kwargs=kwargs,
        expires_at=int(time.time()) + 60,
    )

    answer = intruder.send_task(
        "agent.switch", kwargs=kwargs, queue=prod.row.queue, task_id=task_id, headers={signing.HEADER: auth}
    ).get(timeout=15)

    assert answer["refused"] and "does not match this front-end's key" in answer["error"]
    assert current_release(prod.root, "hello") == v1.release
    assert _refusals(prod.row)[0]["reason"] == "the signature does not match this front-end's key"


def test_a_signed_message_replayed_later_runs_nothing(frontend_hosts, store_binary, intruder):
    environment, (fe,), v1, v2 = _two_versions(frontend_hosts, store_binary)
    task_id = str(uuid.uuid4())
    kwargs = {"switch_id": "switch-to-2", "links": {"hello": v2.release}}
    headers = {
        signing.HEADER: signing.sign(
            key=fe.row.agent_key(),
            task="agent.switch",
            task_id=task_id,
            queue=fe.row.queue,
            kwargs=kwargs,
            expires_at=int(time.time()) + 600,
        )
    }
    # The console's own message, exactly as it crossed the broker (someone recorded it).
    first = intruder.send_task("agent.switch", kwargs=kwargs, queue=fe.row.queue, task_id=task_id, headers=headers)
    assert first.get(timeout=15)["ok"]
    assert current_release(fe.root, "hello") == v2.release
    switch_frontends(frontends=enabled_frontends(environment), releases={"hello": v1.release}, log=ListLog())
    assert current_release(fe.root, "hello") == v1.release

    replay = intruder.send_task("agent.switch", kwargs=kwargs, queue=fe.row.queue, task_id=task_id, headers=headers)
    replay.get(timeout=15)

    assert current_release(fe.root, "hello") == v1.release, "a replayed switch ran again"
    assert fe.answer("/hello/") == (200, "1.0.0\n")
    assert "already ran here" in _refusals(fe.row)[0]["reason"]


def test_an_expired_signed_message_is_refused(frontend_hosts, store_binary, intruder):
    _, (fe,), v1, v2 = _two_versions(frontend_hosts, store_binary)
    task_id = str(uuid.uuid4())
    kwargs = {"switch_id": "late-switch", "links": {"hello": v2.release}}
    auth = signing.sign(
        key=fe.row.agent_key(),
        task="agent.switch",
        task_id=task_id,
        queue=fe.row.queue,
        kwargs=kwargs,
        expires_at=int(time.time()) - 5,
    )

    answer = intruder.send_task(
        "agent.switch", kwargs=kwargs, queue=fe.row.queue, task_id=task_id, headers={signing.HEADER: auth}
    ).get(timeout=15)

    assert answer["refused"] and "expired" in answer["error"]
    assert current_release(fe.root, "hello") == v1.release


def test_an_agent_given_another_folder_in_a_message_refuses(frontend_hosts, store_binary, tmp_path):
    environment, (fe,), v1, v2 = _two_versions(frontend_hosts, store_binary)
    # Another front-end's folder, holding a release and a link the message would move.
    other = tmp_path / "production-fe9"
    (other / "releases" / "hello" / v2.release).mkdir(parents=True)
    (other / "releases" / "hello" / v2.release / ".lifetime-sha256").write_text(v2.sha256)
    (other / "releases" / "hello" / "current").symlink_to(v2.release)
    call = agents.send(
        agents.AgentCall(
            fe.row,
            "agent.switch",
            {"releases_root": str(other), "switch_id": "elsewhere", "links": {"hello": None}},
        ),
        expires_in_s=15,
    )
    agents.wait([call], timeout_s=15)

    assert call.answer["refused"] and "this agent serves only its own folder" in call.answer["error"]
    assert (other / "releases" / "hello" / "current").is_symlink(), "the other folder was touched"
    assert current_release(fe.root, "hello") == v1.release
    # The same folder written another way is still the agent's own.
    same = str(fe.root).replace("/", "//", 1) + "/./"
    ok = agents.send(agents.AgentCall(fe.row, "agent.report", {"releases_root": same}), expires_in_s=15)
    agents.wait([ok], timeout_s=15)
    assert ok.ok, ok.failure()


def test_a_frontend_without_its_key_gets_nothing_and_the_step_says_why(frontend_hosts, store_binary, caplog):
    environment, (fe,), v1, v2 = _two_versions(frontend_hosts, store_binary)
    FrontEnd.objects.filter(pk=fe.row.pk).update(agent_key_encrypted="")

    with caplog.at_level(logging.WARNING), pytest.raises(StepFailed) as failure:
        switch_frontends(frontends=enabled_frontends(environment), releases={"hello": v2.release}, log=ListLog())

    assert "has no agent key" in failure.value.message
    assert current_release(fe.root, "hello") == v1.release


def test_a_new_key_makes_the_agent_refuse_until_it_is_given(frontend_hosts, store_binary, admin_user):
    from environments import services

    environment, (fe,), v1, v2 = _two_versions(frontend_hosts, store_binary)
    services.new_agent_key(actor=Actor.person(admin_user), frontend=fe.row)
    row = FrontEnd.objects.get(pk=fe.row.pk)

    call = agents.send(agents.AgentCall(row, "agent.report", {}), expires_in_s=10)
    agents.wait([call], timeout_s=10)

    # The agent refused the message, and its answer (signed with the old key) is not believed either.
    assert not call.ok and "the answer's signature does not match the front-end's key" in call.failure()
    stored = json.loads((fe.root / ".lifetime-agent" / "refused.json").read_text())
    assert stored["total"] == 1 and stored["latest"][0]["task"] == "agent.report"
    assert "does not match this front-end's key" in stored["latest"][0]["reason"]


def test_an_answer_written_into_the_result_backend_by_someone_else_is_not_believed(
    frontend_hosts, store_binary, intruder
):
    environment, (fe,), v1, v2 = _two_versions(frontend_hosts, store_binary)
    fe.agent.stop()  # the real agent cannot answer first
    call = agents.send(
        agents.AgentCall(fe.row, "agent.switch", {"switch_id": "s-forged", "links": {"hello": v2.release}}),
        expires_in_s=10,
    )
    intruder.backend.store_result(call.result.id, {"ok": True, "before": {}, "after": {"hello": v2.release}}, "SUCCESS")

    agents.wait([call], timeout_s=10)

    assert not call.ok and call.answer is None
    assert "not signed by the front-end's agent" in call.failure()
