"""Switch time across 1, 4 and 8 front-ends, with real agents (Celery workers on their own queues).

    LIFETIME_DEV=true REDIS_URL=redis://127.0.0.1:6379/2 .venv/bin/python benchmarks/bench_switch.py [--rounds 40]

Each round is one call of ``switch_frontends`` (the Continue step): send a switch to every
front-end's queue, each agent moves its ``current`` link with rename(2) and fsyncs the folder,
the console collects every answer. With ``--health`` each front-end also runs a front-end server
(gunicorn) and each agent checks its /_health after switching. Releases are installed on disk
beforehand: the upload is not measured here. Needs Redis, not the console's database.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
os.environ.setdefault("LIFETIME_DEV", "true")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from agent import releases, signing  # noqa: E402
from core import encryption  # noqa: E402
from deployments.steps import ListLog  # noqa: E402
from deployments.steps.switch import switch_frontends  # noqa: E402
from environments.agents import AgentCall, send, wait  # noqa: E402
from environments.models import FrontEnd  # noqa: E402
from lifetime.celery import app as celery_app  # noqa: E402
from tests.agents.conftest import web_app_binary  # noqa: E402
from tests.processes import Agent, FrontEndServer, stop_all  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from report import row  # noqa: E402


def fan_out(frontends: list[FrontEnd]) -> None:
    """The floor: one signed ping to each front-end's queue, every answer collected."""
    wait([send(AgentCall(fe, "agent.ping", {}), expires_in_s=10) for fe in frontends], timeout_s=10)


def install(root: Path, version: str) -> str:
    data = web_app_binary("hello", version)
    sha256 = hashlib.sha256(data).hexdigest()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "incoming.tar.gz"
    archive.write_bytes(data)
    releases.install_release(
        root=root, application="hello", version=version, sha256=sha256, archive=archive, max_bytes=10**6
    )
    archive.unlink()
    return releases.release_name(version, sha256)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--health", action="store_true", help="also run front-end servers and check /_health")
    options = parser.parse_args()
    sizes = [int(n) for n in options.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-switch-"))
    processes = []
    frontends: list[FrontEnd] = []
    try:
        for n in range(max(sizes)):
            root = workdir / f"fe{n + 1}"
            v1, v2 = install(root, "1.0.0"), install(root, "2.0.0")
            releases.point_current(root, "hello", v1)
            queue = f"frontend.bench.{uuid.uuid4().hex[:8]}"
            key = signing.new_key()  # every task is signed with it, and every answer checked
            agent = Agent(
                queue=queue,
                redis_url=settings.REDIS_URL,
                console_url="http://127.0.0.1:9",
                token="bench",
                key=key,
                releases_root=root,
            )
            processes.append(agent.start())
            health_url = ""
            if options.health:
                server = FrontEndServer(releases_root=root)
                processes.append(server.start())
                health_url = f"{server.url}/_health"
            frontends.append(
                FrontEnd(
                    name=f"fe{n + 1}",
                    queue=queue,
                    releases_root=str(root),
                    health_url=health_url,
                    enabled=True,
                    agent_key_encrypted=encryption.encrypt(key),
                )
            )
        for process in processes:
            if isinstance(process, Agent):
                process.wait_ready(celery_app)
            else:
                process.wait_ready()
        print(f"# {options.rounds} switches per size, {'with' if options.health else 'without'} health check")
        print("| front-ends | median ms | p10 ms | p90 ms | min ms | max ms |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size in sizes:
            subset = frontends[:size]
            for _ in range(3):  # warm-up: connections, imports, first fsyncs
                switch_frontends(frontends=subset, releases={"hello": v2}, log=ListLog())
                switch_frontends(frontends=subset, releases={"hello": v1}, log=ListLog())
            timings = []
            for round_ in range(options.rounds):
                target = v2 if round_ % 2 == 0 else v1
                started = time.perf_counter()
                switch_frontends(frontends=subset, releases={"hello": target}, log=ListLog())
                timings.append((time.perf_counter() - started) * 1000)
            floors = []
            for _ in range(options.rounds):
                started = time.perf_counter()
                fan_out(subset)
                floors.append((time.perf_counter() - started) * 1000)
            deciles = statistics.quantiles(timings, n=10)
            print(
                f"| {size} | {statistics.median(timings):.1f} | {deciles[0]:.1f} | {deciles[-1]:.1f} "
                f"| {min(timings):.1f} | {max(timings):.1f} |"
            )
            row(
                f"switch of {size} front-end(s){' with health check' if options.health else ''}, median",
                measured=statistics.median(timings),
                floor=statistics.median(floors),
                max_ratio=3,
                note="floor: a signed ping to each front-end, answers collected",
            )
    finally:
        stop_all(processes)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
