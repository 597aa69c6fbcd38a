"""Upload then switch on real front-ends (agent subprocesses and gunicorn servers), all or nothing."""

from __future__ import annotations

import pytest

from agent.releases import release_name
from deployments.steps import ListLog, StepFailed
from deployments.steps.switch import enabled_frontends, revert_switch, switch_frontends
from deployments.steps.upload import Binary, upload_binaries
from lifetime.celery import app as celery_app
from tests.processes import signed_send

pytestmark = pytest.mark.e2e


def _deploy_first_version(hosts, count: int, store_binary, **start_kwargs):
    environment = hosts.environment()
    frontends = hosts.start(environment, count, **start_kwargs)
    v1 = Binary("hello", "1.0.0", store_binary("hello", "1.0.0"))
    upload_binaries(frontends=enabled_frontends(environment), binaries=[v1], log=ListLog())
    switch_frontends(frontends=enabled_frontends(environment), releases={"hello": v1.release}, log=ListLog())
    for fe in frontends:
        assert fe.answer("/hello/") == (200, "1.0.0\n")
    return environment, frontends, v1


def test_upload_leaves_the_running_version_and_switch_brings_the_new_one_on_every_frontend(
    frontend_hosts, store_binary
):
    environment, frontends, v1 = _deploy_first_version(frontend_hosts, 3, store_binary)
    v2 = Binary("hello", "2.0.0", store_binary("hello", "2.0.0"))

    log = ListLog()
    uploaded = upload_binaries(frontends=enabled_frontends(environment), binaries=[v2], log=log)

    assert all(u.ok and u.downloaded for u in uploaded.uploads)
    assert log.done == log.total == 3
    for fe in frontends:
        assert fe.answer("/hello/") == (200, "1.0.0\n"), "Prepare must not change what runs"
        assert (fe.root / "releases" / "hello" / v2.release / "lifetime-release.json").is_file()

    log = ListLog()
    result = switch_frontends(frontends=enabled_frontends(environment), releases={"hello": v2.release}, log=log)

    assert [s.outcome for s in result.frontends] == ["switched"] * 3
    assert all(s.before == {"hello": v1.release} for s in result.frontends)
    assert all(s.seconds is not None and s.seconds < 5 for s in result.frontends)
    for fe in frontends:
        assert fe.answer("/hello/") == (200, "2.0.0\n")
        status, body = fe.answer("/_lifetime/releases")
        assert status == 200 and v2.release in body

    again = upload_binaries(frontends=enabled_frontends(environment), binaries=[v2], log=ListLog())
    assert not any(u.downloaded for u in again.uploads), "a release already present is not downloaded again"

    revert_switch(frontends=enabled_frontends(environment), switch_id=result.switch_id, log=ListLog())
    for fe in frontends:
        assert fe.answer("/hello/") == (200, "1.0.0\n")


def test_switch_with_one_agent_stopped_reverts_the_others(frontend_hosts, store_binary):
    environment, frontends, v1 = _deploy_first_version(frontend_hosts, 3, store_binary)
    v2 = Binary("hello", "2.0.0", store_binary("hello", "2.0.0"))
    upload_binaries(frontends=enabled_frontends(environment), binaries=[v2], log=ListLog())
    stopped = frontends[1]
    stopped.agent.stop()

    log = ListLog()
    with pytest.raises(StepFailed) as failure:
        switch_frontends(
            frontends=enabled_frontends(environment), releases={"hello": v2.release}, log=log, timeout_s=2.0
        )

    assert f"front-end {stopped.row.name} did not answer in time" in failure.value.message
    assert "put back on the versions it ran before" in failure.value.message
    outcomes = {s["frontend"]: s["outcome"] for s in failure.value.detail["switch"]["frontends"]}
    assert outcomes == {
        frontends[0].row.name: "reverted",
        stopped.row.name: "revert_queued",
        frontends[2].row.name: "reverted",
    }
    for fe in frontends:
        assert fe.answer("/hello/") == (200, "1.0.0\n")

    # The agent comes back: its expired switch must not run, the queued revert leaves it on 1.0.0.
    stopped.agent.start()
    stopped.agent.wait_ready(celery_app)
    report = signed_send(celery_app, "agent.report", queue=stopped.row.queue, key=stopped.row.agent_key())
    assert report.get(timeout=10)["applications"]["hello"]["current"] == v1.release
    assert stopped.answer("/hello/") == (200, "1.0.0\n")


def test_switch_with_one_failing_health_check_reverts_every_frontend(frontend_hosts, store_binary):
    environment, frontends, v1 = _deploy_first_version(frontend_hosts, 3, store_binary)
    v2 = Binary("hello", "2.0.0", store_binary("hello", "2.0.0"))
    upload_binaries(frontends=enabled_frontends(environment), binaries=[v2], log=ListLog())
    sick = frontends[2]
    # This front-end's copy of the new release cannot start: its health check answers 503.
    (sick.root / "releases" / "hello" / v2.release / "hello_app" / "__init__.py").write_text("raise SystemError\n")

    with pytest.raises(StepFailed) as failure:
        switch_frontends(
            frontends=enabled_frontends(environment),
            releases={"hello": v2.release},
            log=ListLog(),
            health_timeout_s=1.0,
        )

    assert f"front-end {sick.row.name}: health check" in failure.value.message
    assert "503" in failure.value.message
    for fe in frontends:
        assert fe.answer("/hello/") == (200, "1.0.0\n")
        assert fe.answer("/_health")[0] == 200


def test_release_name_is_what_the_agents_unpack_to(store_binary):
    sha = "a" * 64
    assert release_name("1.2.3", sha) == "1.2.3-aaaaaaaaaaaa"
