"""Fixtures for front-end agents: tiny binaries in the artifact store, and real front-ends (an agent
subprocess on its own queue plus a gunicorn front-end server on a free port) registered as FrontEnd
rows of an environment. Every process started here is stopped on teardown, whatever happened."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from core.actors import Actor
from deployments.artifacts import store as artifacts
from environments import services as env_services
from environments.models import Environment, FrontEnd
from lifetime.celery import app as celery_app
from tests.processes import Agent, FrontEndServer, Process, free_port, stop_all

FIXED_MTIME = 1_700_000_000


def tar_gz(members: dict[str, bytes], *, extra: Callable[[tarfile.TarFile], None] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            extra(tar)
    # A fixed gzip timestamp: the same members give the same digest, as compiled binaries do.
    return gzip.compress(buffer.getvalue(), mtime=0)


def web_app_binary(application: str, version: str, *, url_path: str | None = None, broken: bool = False) -> bytes:
    """A compiled binary as the compile step makes it: lifetime-release.json and one WSGI package
    whose answer says which version runs."""
    package = f"{application.replace('-', '_')}_app"
    source = (
        f"VERSION = {version!r}\n"
        "def application(environ, start_response):\n"
        "    body = f'{VERSION}\\n'.encode()\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])\n"
        "    return [body]\n"
    )
    if broken:
        source = "raise RuntimeError('this release does not start')\n"
    manifest = {
        "application": application,
        "version": version,
        "wsgi": f"{package}:application",
        "url_path": url_path or f"/{application}",
    }
    return tar_gz({"lifetime-release.json": json.dumps(manifest).encode(), f"{package}/__init__.py": source.encode()})


@pytest.fixture
def artifact_store(settings, tmp_path: Path) -> Path:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def store_binary(artifact_store) -> Callable[..., str]:
    def store(application: str, version: str, **kwargs) -> str:
        sha256, _ = artifacts.put_bytes(web_app_binary(application, version, **kwargs))
        return sha256

    return store


@dataclasses.dataclass
class RealFrontEnd:
    row: FrontEnd
    agent: Agent
    server: FrontEndServer

    @property
    def root(self) -> Path:
        return Path(self.row.releases_root)

    def answer(self, path: str) -> tuple[int, str]:
        return self.server.get(path)


class FrontEndHosts:
    """Starts real front-ends (agent + server) for an environment; stops them all at the end."""

    def __init__(self, *, tmp_path: Path, console_url: str, actor) -> None:
        self.tmp_path = tmp_path
        self.console_url = console_url
        self.actor = actor
        self.processes: list[Process] = []
        self.count = 0

    def environment(self, name: str = "Production") -> Environment:
        order = (Environment.objects.order_by("-order").values_list("order", flat=True).first() or 0) + 1
        return env_services.save_environment(
            actor=Actor.person(self.actor),
            data={"name": f"{name} {uuid.uuid4().hex[:6]}", "order": order, "kind": "Production"},
        )

    def start(
        self, environment: Environment, count: int, *, health: bool = True, agent_env: dict[str, str] | None = None
    ) -> list[RealFrontEnd]:
        started: list[RealFrontEnd] = []
        for _ in range(count):
            self.count += 1
            port = free_port()
            root = self.tmp_path / f"fe{self.count}"
            base_url = f"http://127.0.0.1:{port}"
            row = env_services.save_frontend(
                actor=Actor.person(self.actor),
                environment=environment,
                data={
                    "name": f"fe{self.count}",
                    # Unique across runs: the Redis database outlives a test run's messages.
                    "queue": f"{env_services.default_queue(environment, f'fe{self.count}')}-{uuid.uuid4().hex[:10]}",
                    "releases_root": str(root),
                    "base_url": base_url,
                    "health_url": f"{base_url}/_health" if health else "",
                    "enabled": True,
                },
            )
            agent = Agent(
                queue=row.queue,
                redis_url=settings.REDIS_URL,
                console_url=self.console_url,
                token=settings.AGENT_TOKEN,
                key=row.agent_key(),
                releases_root=root,
                extra_env=agent_env,
            )
            server = FrontEndServer(releases_root=root, port=port)
            self.processes += [agent.start(), server.start()]
            started.append(RealFrontEnd(row, agent, server))
        for fe in started:
            fe.agent.wait_ready(celery_app)
            fe.server.wait_ready()
        return started

    def stop(self) -> None:
        stop_all(self.processes)


@pytest.fixture
def frontend_hosts(live_server, tmp_path: Path, admin_user) -> Iterator[FrontEndHosts]:
    hosts = FrontEndHosts(tmp_path=tmp_path, console_url=live_server.url, actor=admin_user)
    try:
        yield hosts
    finally:
        hosts.stop()
