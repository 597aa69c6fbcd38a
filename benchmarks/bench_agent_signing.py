"""What signing costs each agent task: the console's key decryption and signature, the agent's check,
its ledger (the id of each task it ran, kept until the signature expires) and the answer's signature.

    LIFETIME_DEV=true .venv/bin/python benchmarks/bench_agent_signing.py [--tasks 5000]

In-process, no broker: the parts that signing adds to every round trip of bench_switch.py. The
ledger writes under a temporary folder (the same file system as /tmp).
"""

from __future__ import annotations

import argparse
import os
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

from agent import signing  # noqa: E402
from agent.guard import Ledger  # noqa: E402
from core import encryption  # noqa: E402

KWARGS = {
    "releases_root": "/srv/lifetime/fe1",
    "switch_id": "4f0c2b1e9a7d4c3b8e6f5a4d3c2b1a09",
    "links": {"hr_core": "1.1.0-0123456789ab", "leave_portal": "1.1.0-ba9876543210"},
    "health_url": "http://10.0.0.5:8101/_health",
    "health_timeout_s": 8.0,
}
ANSWER = {
    "ok": True,
    "before": {"hr_core": "1.0.0-aaaaaaaaaaaa", "leave_portal": "1.0.0-bbbbbbbbbbbb"},
    "after": {"hr_core": "1.1.0-0123456789ab", "leave_portal": "1.1.0-ba9876543210"},
    "switch_seconds": 0.0002,
    "seconds": 0.004,
}


def timed(fn, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    count = parser.parse_args().tasks
    key = signing.new_key()
    stored = encryption.encrypt(key)
    ledger = Ledger(Path(tempfile.mkdtemp(prefix="bench-ledger-")))
    queue = "frontend.production.fe1"

    def console_sends():
        signing.sign(
            key=encryption.decrypt(stored),
            task="agent.switch",
            task_id=str(uuid.uuid4()),
            queue=queue,
            kwargs=KWARGS,
            expires_at=int(time.time()) + 60,
        )

    def agent_runs():
        task_id = str(uuid.uuid4())
        auth = signing.sign(
            key=key, task="agent.switch", task_id=task_id, queue=queue, kwargs=KWARGS, expires_at=int(time.time()) + 60
        )
        started = time.perf_counter()
        signing.verify(
            key=key,
            auth=auth,
            task="agent.switch",
            task_id=task_id,
            queue=queue,
            args=(),
            kwargs=KWARGS,
            now=time.time(),
        )
        ledger.answer_of(task_id)
        answer = signing.sign_answer(key=key, task_id=task_id, answer=ANSWER)
        ledger.remember(task_id=task_id, task="agent.switch", expires_at=auth["exp"], answer=answer)
        agent_runs.samples.append((time.perf_counter() - started) * 1e6)

    agent_runs.samples = []

    signed_answer = signing.sign_answer(key=key, task_id="t" * 36, answer=ANSWER)

    def console_checks_answer():
        signing.verify_answer(key=encryption.decrypt(stored), task_id="t" * 36, answer=signed_answer)

    rows = [
        ("console: decrypt key + sign task", timed(console_sends, count)),
        ("console: decrypt key + check answer", timed(console_checks_answer, count)),
    ]
    timed(agent_runs, count)
    rows.insert(1, ("agent: check, ledger look-up and write, sign answer", agent_runs.samples))
    print(f"# {count} tasks each")
    print("| part | median µs | p90 µs |")
    print("|---|---:|---:|")
    for name, samples in rows:
        print(f"| {name} | {statistics.median(samples):.0f} | {statistics.quantiles(samples, n=10)[-1]:.0f} |")


if __name__ == "__main__":
    main()
