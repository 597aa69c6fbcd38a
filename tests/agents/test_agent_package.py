"""The agent and the front-end server as packages of their own, installed as on a second host:
``pip install ./agent`` in a fresh virtualenv brings the agent's dependencies and nothing of the
console's, and its ``lifetime-agent`` command, configured by a file, uploads a binary from the
console; ``pip install ./frontend_server`` serves it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from core.actors import Actor
from deployments.steps import ListLog
from deployments.steps.switch import enabled_frontends, switch_frontends
from deployments.steps.upload import Binary, upload_binaries
from environments import services as env_services
from lifetime.celery import app as celery_app
from tests.processes import REPO, Process, free_port, signed_send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# What `pip install ./agent` may bring: Celery, its Redis transport, python-dotenv, their dependencies.
CONSOLE_ONLY = {"django", "psycopg2-binary", "gunicorn", "pglast", "whitenoise", "boto3", "django-storages"}


def _host_env() -> dict[str, str]:
    """A front-end host's environment: nothing of the repository on the path, no console settings."""
    drop = ("PYTHON", "DJANGO_", "PYTEST_", "VIRTUAL_ENV", "LIFETIME_", "AGENT_", "DATABASE_URL", "ARTIFACT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _pip(venv: Path, *args: str) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
        capture_output=True,
        text=True,
        env=_host_env(),
        cwd=venv.parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _installed(venv: Path) -> set[str]:
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        env=_host_env(),
        check=True,
    ).stdout
    return {line.split("==")[0].lower() for line in listed.splitlines() if "==" in line}


class HostProcess(Process):
    """A process of the installed package, run from outside the repository."""

    def start(self) -> HostProcess:
        log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            self.args, env=self.env, cwd=self.env["HOME"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self


def test_the_agent_installs_alone_and_its_command_uploads_and_switches_a_release(
    tmp_path, live_server, admin_user, store_binary
):
    venv = tmp_path / "host" / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _pip(venv, str(REPO / "agent"))

    installed = _installed(venv)
    assert {"lifetime-agent", "celery", "kombu", "redis", "python-dotenv"} <= installed
    assert not installed & CONSOLE_ONLY, installed & CONSOLE_ONLY
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import agent; print(agent.__file__)"],
        capture_output=True,
        text=True,
        env=_host_env(),
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(venv) in where

    environment = env_services.save_environment(
        actor=Actor.person(admin_user), data={"name": "Production", "order": 1, "kind": "Production"}
    )
    port = free_port()
    root = tmp_path / "host" / "srv" / "fe1"
    frontend = env_services.save_frontend(
        actor=Actor.person(admin_user),
        environment=environment,
        data={
            "name": "fe1",
            "queue": f"frontend.production.fe1-{os.getpid()}-{time.monotonic_ns()}",
            "releases_root": str(root),
            "base_url": f"http://127.0.0.1:{port}",
            "health_url": f"http://127.0.0.1:{port}/_health",
            "enabled": True,
        },
    )
    etc = tmp_path / "host" / "etc"
    etc.mkdir()
    (etc / "agent-token").write_text(settings.AGENT_TOKEN)
    (etc / "fe1.key").write_text(frontend.agent_key())
    config = etc / "agent.env"
    config.write_text(
        "\n".join(
            [
                "# as docs/agents.md shows it",
                f"REDIS_URL={settings.REDIS_URL}",
                f"CONSOLE_BASE_URL={live_server.url}",
                f"AGENT_TOKEN_FILE={etc / 'agent-token'}",
                f"AGENT_KEY_FILE={etc / 'fe1.key'}",
                f"AGENT_RELEASES_ROOT={root}",
                f"AGENT_QUEUE={frontend.queue}",
                f"FRONTEND_BIND=127.0.0.1:{port}",
                "",
            ]
        )
    )
    env = {**_host_env(), "HOME": str(tmp_path / "host")}

    check = subprocess.run(
        [str(venv / "bin" / "lifetime-agent"), "--config", str(config), "check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok" in check.stdout and frontend.agent_key() not in check.stdout + check.stderr
    assert settings.AGENT_TOKEN not in check.stdout + check.stderr
    missing = subprocess.run(
        [str(venv / "bin" / "lifetime-agent"), "run"], capture_output=True, text=True, env=env, timeout=60
    )
    assert missing.returncode == 2 and "AGENT_TOKEN is not set" in missing.stderr

    agent = HostProcess("packaged-agent", [str(venv / "bin" / "lifetime-agent"), "--config", str(config)], env).start()
    _pip(venv, str(REPO / "frontend_server"))
    server = HostProcess(
        "packaged-frontend", [str(venv / "bin" / "lifetime-frontend-server"), "--config", str(config)], env
    ).start()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert agent.running, agent.log()[-3000:]
            try:
                answer = signed_send(celery_app, "agent.ping", queue=frontend.queue, key=frontend.agent_key())
                assert answer.get(timeout=3, interval=0.05)["ok"]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise AssertionError(agent.log()[-3000:]) from None
        binary = Binary("hello", "1.0.0", store_binary("hello", "1.0.0"))
        frontends = enabled_frontends(environment)
        upload_binaries(frontends=frontends, binaries=[binary], log=ListLog(), timeout_s=60)
        assert (root / "releases" / "hello" / binary.release / "lifetime-release.json").is_file()
        switch_frontends(frontends=frontends, releases={"hello": binary.release}, log=ListLog())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=10) as response:
            assert response.read().decode().strip() == "1.0.0"
    finally:
        agent.stop()
        server.stop()
