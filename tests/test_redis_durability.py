"""The console says, at start, when the Redis it is given may lose its messages: evicting keys under
memory pressure, or keeping no append-only file. Each case runs its own private redis-server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.redis_durability import durability_problems
from tests.processes import StageWorker, console_env, free_port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen] = []

    def start(*options: str) -> str:
        port = free_port()
        folder = tmp_path / f"redis-{port}"
        folder.mkdir()
        proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--save", "", *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                return url
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_redis_that_keeps_its_data_and_never_evicts_raises_nothing(private_redis):
    url = private_redis("--appendonly", "yes", "--maxmemory-policy", "noeviction")
    assert durability_problems(url) == []


def test_an_evicting_redis_without_append_only_file_is_named_twice(private_redis):
    url = private_redis("--appendonly", "no", "--maxmemory-policy", "allkeys-lru")
    problems = durability_problems(url)
    assert len(problems) == 2
    assert "Redis may evict keys (maxmemory-policy is allkeys-lru)" in problems[0]
    assert "appendonly no" in problems[1]


def test_a_redis_that_does_not_answer_is_said_so():
    assert durability_problems(f"redis://127.0.0.1:{free_port()}/0") == [
        "Redis could not be asked whether it keeps its data (ConnectionError)."
    ]


@pytest.mark.e2e
def test_the_stage_worker_warns_at_start_when_its_redis_may_evict(private_redis, settings, live_server, db):
    url = private_redis("--appendonly", "yes", "--maxmemory-policy", "volatile-lru")
    worker = StageWorker(console_env(settings, console_url=live_server.url, extra={"REDIS_URL": url})).start()
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 10
        while "may evict keys" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-2000:]
            time.sleep(0.1)
        assert "maxmemory-policy is volatile-lru" in worker.log()
    finally:
        worker.stop()
