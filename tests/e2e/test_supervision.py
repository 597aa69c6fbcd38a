"""scripts/up.sh's supervisor: the configuration it writes (``manage.py supervisor_config``) run by a
real supervisord. Killing one agent leaves the console and every other process running, and the
agent comes back by itself and answers its queue again."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command

from core.actors import Actor
from environments import services as env_services
from environments.models import FrontEnd
from lifetime.celery import app as celery_app
from tests.processes import BIN, Process, console_env, free_port, signed_send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class Supervisor(Process):
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        super().__init__("supervisord", [str(BIN / "supervisord"), "-c", str(config)], env)

    def ctl(self, *args: str) -> str:
        return subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.config), *args], capture_output=True, text=True, timeout=30
        ).stdout

    def states(self) -> dict[str, tuple[str, int | None]]:
        """{program: (state, pid)} as supervisorctl reports them."""
        found = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            pid = None
            if "pid" in parts:
                pid = int(parts[parts.index("pid") + 1].rstrip(","))
            found[parts[0]] = (parts[1], pid)
        return found

    def wait_all_running(self, names: set[str], *, timeout_s: float = 90) -> dict[str, tuple[str, int | None]]:
        deadline = time.monotonic() + timeout_s
        states: dict = {}
        while time.monotonic() < deadline:
            if not self.running:
                raise AssertionError(f"supervisord exited:\n{self.log()[-3000:]}")
            states = self.states()
            if names <= set(states) and all(states[name][0] == "RUNNING" for name in names):
                return states
            time.sleep(0.5)
        raise AssertionError(f"not all running: {states}\n{self.log()[-3000:]}")


def _answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


def test_a_killed_agent_comes_back_by_itself_and_nothing_else_stops(settings, tmp_path, admin_user):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    env = env_services.save_environment(
        actor=Actor.person(admin_user), data={"name": "Production", "order": 1, "kind": "Production"}
    )
    for n in (1, 2):
        port = free_port()
        env_services.save_frontend(
            actor=Actor.person(admin_user),
            environment=env,
            data={
                "name": f"fe{n}",
                "queue": f"frontend.production.fe{n}-{os.getpid()}-{time.monotonic_ns()}",
                "releases_root": str(tmp_path / f"fe{n}"),
                "base_url": f"http://127.0.0.1:{port}",
                "enabled": True,
            },
        )
    web_port = free_port()
    run_dir = tmp_path / "run"
    out = io.StringIO()
    call_command(
        "supervisor_config",
        port=web_port,
        secrets_dir=str(tmp_path / "secrets"),
        run_dir=str(run_dir),
        stdout=out,
        stderr=io.StringIO(),
    )
    config = run_dir / "supervisord.conf"
    config.write_text(out.getvalue())
    console_url = f"http://127.0.0.1:{web_port}"
    supervisor = Supervisor(config, console_env(settings, console_url=console_url)).start()
    try:
        programs = {"web", "stages", "beat", "agent-production-fe1", "agent-production-fe2"}
        programs |= {"frontend-production-fe1", "frontend-production-fe2"}
        before = supervisor.wait_all_running(programs)
        fe1, fe2 = FrontEnd.objects.filter(environment=env).order_by("name")

        victim = before["agent-production-fe1"][1]
        os.kill(victim, signal.SIGKILL)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = supervisor.states()
            state, pid = after.get("agent-production-fe1", ("?", None))
            if state == "RUNNING" and pid not in (None, victim):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the agent did not come back: {supervisor.states()}\n{supervisor.log()[-3000:]}")
        # Nobody else was stopped or restarted.
        for name in programs - {"agent-production-fe1"}:
            assert after[name] == before[name], (name, before[name], after[name])
        assert "exited: agent-production-fe1" in (run_dir / "supervisord.log").read_text()
        assert _answers(f"{console_url}/health/ready") == 200
        # The new agent consumes its queue again (a ping signed with its key), and so does the other.
        for frontend in (fe1, fe2):
            deadline = time.monotonic() + 60
            while True:
                result = signed_send(celery_app, "agent.ping", queue=frontend.queue, key=frontend.agent_key())
                try:
                    assert result.get(timeout=5, interval=0.05)["ok"]
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
    finally:
        supervisor.stop(timeout_s=60)
    # Stopping supervisord stopped every process it ran.
    for _state, pid in before.values():
        if pid:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
