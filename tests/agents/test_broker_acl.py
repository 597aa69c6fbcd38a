"""The broker set-up the docs show (docs/redis-users.acl), really used: a private Redis with ACL
users, an agent on the user of its environment, the console on its own user."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery

from agent import signing
from tests.processes import REPO, Agent, free_port, signed_send

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server"),
]
PASSWORDS = {"CONSOLE-PASSWORD": "console-pw-1", "PRODUCTION-PASSWORD": "prod-pw-2", "DEVELOPMENT-PASSWORD": "dev-pw-3"}


@pytest.fixture
def acl_redis(tmp_path: Path):
    acl = (REPO / "docs" / "redis-users.acl").read_text()
    for placeholder, password in PASSWORDS.items():
        acl = acl.replace(placeholder, password)
    (tmp_path / "users.acl").write_text(acl)
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--aclfile", str(tmp_path / "users.acl"), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://console:{PASSWORDS['CONSOLE-PASSWORD']}@127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield port
    server.terminate()
    server.wait(timeout=10)


def test_an_agent_works_with_its_environments_broker_user_and_that_user_reaches_nothing_else(acl_redis, tmp_path):
    port = acl_redis
    console_url = f"redis://console:{PASSWORDS['CONSOLE-PASSWORD']}@127.0.0.1:{port}/0"
    queue = f"frontend.production.fe-{uuid.uuid4().hex[:8]}"
    key = signing.new_key()
    agent = Agent(
        queue=queue,
        redis_url=f"redis://agent-production:{PASSWORDS['PRODUCTION-PASSWORD']}@127.0.0.1:{port}/0",
        console_url="http://127.0.0.1:9",
        token="t" * 32,
        key=key,
        releases_root=tmp_path / "fe",
    )
    console = Celery("console", broker=console_url, backend=console_url, set_as_current=False)
    admin = redis.Redis.from_url(console_url)
    admin.execute_command("ACL", "LOG", "RESET")
    agent.start()
    try:
        agent.wait_ready(console, timeout_s=30)
        answer = signed_send(console, "agent.report", queue=queue, key=key).get(timeout=15)
        assert answer["ok"] and answer["refused_total"] == 0
        # An agent's whole working life went through without one refused command.
        assert admin.execute_command("ACL", "LOG") == [], agent.log()[-2000:]
    finally:
        agent.stop()
        # Leave no result subscription behind: the private Redis goes away with this test, and a
        # subscription would try to reconnect to it for twenty seconds.
        consumer = console.backend.result_consumer
        consumer.stop()
        consumer._pubsub = None
        consumer.subscribed_to.clear()
        console.close()

    development = redis.Redis.from_url(
        f"redis://agent-development:{PASSWORDS['DEVELOPMENT-PASSWORD']}@127.0.0.1:{port}/0"
    )
    for command in (
        ("LPUSH", queue, "forged"),
        ("SMEMBERS", f"_kombu.binding.{queue}"),
        ("FLUSHALL",),
        ("KEYS", "*"),
        ("CONFIG", "GET", "requirepass"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            development.execute_command(*command)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).ping()
