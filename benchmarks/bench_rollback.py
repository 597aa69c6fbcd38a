"""Roll Back of a plan of 5 applications on 4 front-ends, against the switch of the same size.

    LIFETIME_DEV=true REDIS_URL=redis://127.0.0.1:6379/2 .venv/bin/python benchmarks/bench_rollback.py [--rounds 40]

Real agents (one ``celery -A agent worker`` per front-end, signed tasks), the console's database
(``lifetime_rollback_bench`` unless BENCH_DATABASE_URL says otherwise; migrated, then emptied of
this script's rows each run). Each round:

* **switch**: one call of ``switch_frontends`` moving the 5 applications forward on the 4 front-ends
  (what Continue's switch step costs for that size);
* **roll back**: ``plans.rollback_plan`` (rights, the refusals: rows read, and each agent asked which
  releases it holds; the move to rolling back, the stage row) and then the stage itself, run in this
  process by ``runner.run`` as a stage worker would (the check step asks the agents again, the
  all-or-nothing switch back, the running versions and the move to rolled back).

What is not in the roll back figure: the stage task's trip through Redis to a stage worker (a
~1.5 ms round trip plus the worker's prefetch), since the worker is this process. Releases are
installed on disk beforehand; no health URL.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LIFETIME_DEV", "true")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifetime_rollback_bench"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
subprocess.run([sys.executable, str(ROOT / "scripts" / "ensure_database.py")], check=True)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from agent import releases, signing  # noqa: E402
from core import encryption  # noqa: E402
from core.actors import Actor  # noqa: E402
from deployments.models import (  # noqa: E402
    Application,
    ApplicationVersion,
    DeploymentPlan,
    PlanOperation,
    RunningVersion,
    Stage,
)
from deployments.plans import services as plans  # noqa: E402
from deployments.stages import queue, runner  # noqa: E402
from deployments.state.machine import PlanState  # noqa: E402
from deployments.steps import ListLog  # noqa: E402
from deployments.steps.switch import switch_frontends  # noqa: E402
from environments import services as env_services  # noqa: E402
from environments.models import Environment, FrontEnd  # noqa: E402
from lifetime.celery import app as celery_app  # noqa: E402
from tests.agents.conftest import web_app_binary  # noqa: E402
from tests.processes import Agent, stop_all  # noqa: E402

SYSTEM = Actor.system("benchmark")
PREFIX = "bench-rollback-"


def install(root: Path, application: str, version: str) -> tuple[str, str]:
    data = web_app_binary(application, version)
    sha256 = hashlib.sha256(data).hexdigest()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "incoming.tar.gz"
    archive.write_bytes(data)
    releases.install_release(
        root=root, application=application, version=version, sha256=sha256, archive=archive, max_bytes=10**6
    )
    archive.unlink()
    return releases.release_name(version, sha256), sha256


def clear_rows() -> None:
    DeploymentPlan.objects.filter(target__name__startswith=PREFIX).delete()
    RunningVersion.objects.filter(environment__name__startswith=PREFIX).delete()
    ApplicationVersion.objects.filter(application__name__startswith="bench_rb_").delete()
    Application.objects.filter(name__startswith="bench_rb_").delete()
    FrontEnd.objects.filter(environment__name__startswith=PREFIX).delete()
    Environment.objects.filter(name__startswith=PREFIX).delete()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--frontends", type=int, default=4)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    clear_rows()
    names = [f"bench_rb_{n + 1}" for n in range(options.apps)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    processes = []
    tag = uuid.uuid4().hex[:6]
    source = env_services.save_environment(
        actor=SYSTEM, data={"name": f"{PREFIX}dev-{tag}", "order": 90, "kind": "Development"}
    )
    target = env_services.save_environment(
        actor=SYSTEM, data={"name": f"{PREFIX}test-{tag}", "order": 91, "kind": "Test"}
    )
    try:
        old: dict[str, ApplicationVersion] = {}
        new: dict[str, ApplicationVersion] = {}
        links_old: dict[str, str] = {}
        links_new: dict[str, str] = {}
        for n in range(options.frontends):
            root = workdir / f"fe{n + 1}"
            for name in names:
                (r1, s1), (r2, s2) = install(root, name, "1.0.0"), install(root, name, "2.0.0")
                releases.point_current(root, name, r2)
                links_old[name], links_new[name] = r1, r2
                if name not in old:
                    app = Application.objects.create(name=name)
                    old[name] = ApplicationVersion.objects.create(
                        application=app, version="1.0.0", bundle_sha256=s1, binary_sha256=s1
                    )
                    new[name] = ApplicationVersion.objects.create(
                        application=app, version="2.0.0", bundle_sha256=s2, binary_sha256=s2
                    )
            queue_name = f"frontend.bench.{uuid.uuid4().hex[:8]}"
            key = signing.new_key()
            agent = Agent(
                queue=queue_name,
                redis_url=settings.REDIS_URL,
                console_url="http://127.0.0.1:9",
                token="bench",
                key=key,
                releases_root=root,
            )
            processes.append(agent.start())
            FrontEnd.objects.create(
                environment=target,
                name=f"fe{n + 1}",
                queue=queue_name,
                releases_root=str(root),
                enabled=True,
                agent_key_encrypted=encryption.encrypt(key),
            )
        for process in processes:
            process.wait_ready(celery_app)
        frontends = list(target.frontends.order_by("name"))

        plan = plans.create_plan(
            actor=SYSTEM,
            source=source,
            target=target,
            operations=[plans.Operation(new[n].application, new[n]) for n in names],
        )

        def as_finished_with_new_running() -> None:
            # What a finished Continue leaves: the plan finished, each operation knowing what it
            # replaced, the new versions running (set by hand: the deployment is not measured).
            DeploymentPlan.objects.filter(pk=plan.pk).update(
                state=PlanState.FINISHED_SUCCESSFUL, finished_at=timezone.now()
            )
            for name in names:
                PlanOperation.objects.filter(plan=plan, application=new[name].application).update(
                    previous_version=old[name], previous_known=True, rollback_requested_at=None, rolled_back_at=None
                )
                RunningVersion.objects.update_or_create(
                    environment=target,
                    application=new[name].application,
                    defaults={"version": new[name], "since": timezone.now(), "plan": plan},
                )

        phases: list[tuple[float, int, int]] = []
        switch_ms: list[float] = []
        rollback_ms: list[float] = []
        for round_ in range(options.rounds + 3):
            started = time.perf_counter()
            switch_frontends(frontends=frontends, releases=links_new, log=ListLog())
            switched = (time.perf_counter() - started) * 1000
            as_finished_with_new_running()
            plan.refresh_from_db()
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as asked:
                plans.rollback_plan(actor=SYSTEM, plan=plan)
            stage = Stage.objects.filter(plan=plan).order_by("-pk").first()
            service_done = time.perf_counter()
            with CaptureQueriesContext(connection) as ran:
                runner.run(stage.pk)
            rolled = (time.perf_counter() - started) * 1000
            phases.append(((service_done - started) * 1000, len(asked), len(ran)))
            plan.refresh_from_db()
            if plan.state != PlanState.ROLLED_BACK:
                raise SystemExit(f"round {round_}: the plan is {plan.state}: {stage.explanation}")
            if round_ >= 3:  # warm-up: connections, imports, first fsyncs
                switch_ms.append(switched)
                rollback_ms.append(rolled)

        def row(label: str, timings: list[float]) -> str:
            deciles = statistics.quantiles(timings, n=10)
            return (
                f"| {label} | {statistics.median(timings):.1f} | {deciles[0]:.1f} | {deciles[-1]:.1f} "
                f"| {min(timings):.1f} | {max(timings):.1f} |"
            )

        print(f"# {options.rounds} rounds, {options.apps} applications on {options.frontends} front-ends")
        print("| | median ms | p10 ms | p90 ms | min ms | max ms |")
        print("|---|---:|---:|---:|---:|---:|")
        print(row("switch (Continue's step)", switch_ms))
        print(row("Roll Back (service + stage)", rollback_ms))
        service = statistics.median(p[0] for p in phases[3:])
        print(
            f"\nof which the service (refusals, agents asked, the move): median {service:.1f} ms; "
            f"SQL statements: {phases[-1][1]} in the service, {phases[-1][2]} in the stage"
        )
        ratio = statistics.median(rollback_ms) / statistics.median(switch_ms)
        print(f"\nmedian Roll Back / median switch = {ratio:.2f} (target: at most 3)")
    finally:
        stop_all(processes)
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue.STAGES_QUEUE)  # the stage messages nobody took
        clear_rows()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
