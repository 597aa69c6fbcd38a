"""The window ratio: Continue ÷ a single-stage deployment of the large example, from the plans' own timestamps.

    LIFETIME_DEV=true .venv/bin/python benchmarks/bench_window_ratio.py [--runs 5] [--modules 9000]

The whole engine, really started (the end-to-end tests' fixtures: the console over HTTP, a Celery
stage worker, one agent and one front-end server per front-end, Redis, PostgreSQL and an
application database per environment). Each run registers a new version of HR Core (1.1.N, the
large example: ``--modules`` generated modules, plus one script that inserts one row) and deploys
it twice:

* to **Staging**, a single-stage environment of two front-ends: Start does everything (compile
  cold, upload, SQL, switch); measured from the plan's ``started_at`` to its ``finished_at``;
* to **Production**, a two-stage environment of two front-ends: Prepare (the compile is reused, the
  binary is uploaded, the SQL generated and rehearsed), then Continue; measured from the plan's
  ``continued_at`` to its ``finished_at``: the part that falls in the deployment window.

The ratio of each run is Continue ÷ single-stage; the table gets the median of the runs and their
spread (min–max). Runs as pytest on this file (``scripts/test.sh``), like ``chaos_continue.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modules", type=int, default=9000)
    args = parser.parse_args()
    env = {**os.environ, "WINDOW_RATIO_RUNS": str(args.runs), "WINDOW_RATIO_MODULES": str(args.modules)}
    return subprocess.call(
        [str(REPO / "scripts" / "test.sh"), str(Path(__file__).resolve()), "-p", "no:cacheprovider", "-q", "-s"],
        env=env,
        cwd=REPO,
    )


# --- the run itself (collected by pytest when given this file) ------------------------------------

if "WINDOW_RATIO_RUNS" in os.environ:
    import psycopg2
    import pytest

    sys.path.insert(0, str(REPO / "benchmarks"))
    from report import row

    from core.actors import Actor
    from deployments.catalog import services as catalog
    from deployments.models import DeploymentPlan, PlanState
    from deployments.plans import services as plans
    from examples.build import FORMATS, bundle_files, pack

    # The end-to-end tests' fixtures, used here.
    from tests.conftest import (  # noqa: F401
        admin_user,
        app_databases,
        django_db_setup,
        outbound_to_loopback,
        small_rehearsal_calibration,
    )
    from tests.e2e.conftest import engine  # noqa: F401

    pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
    DONE = (PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)

    def _large_bundle(n: int, modules: int) -> bytes:
        files = dict(bundle_files("hr_core", "1.1.0", modules=modules))
        version = f"1.1.{n}"
        manifest = files["lifetime.toml"].decode().replace('version = "1.1.0"', f'version = "{version}"', 1)
        files["lifetime.toml"] = manifest.encode()
        files[f"sql/9{n:03d}_window.sql"] = (
            f"INSERT INTO hr_core.department (code, name) VALUES ('W{n}', 'Window run {n}');\n".encode()
        )
        return pack(files, FORMATS["hr_core"])

    def _rows_inserted(env, n: int) -> int:
        conn = psycopg2.connect(env.app_db_dsn())
        try:
            with conn.cursor() as cur:
                cur.execute("select count(*) from hr_core.department where code = %s", [f"W{n}"])
                return cur.fetchone()[0]
        finally:
            conn.close()

    def test_window_ratio(engine):  # noqa: F811 - the fixture imported above
        runs, modules = int(os.environ["WINDOW_RATIO_RUNS"]), int(os.environ["WINDOW_RATIO_MODULES"])
        engine.start_worker()
        staging = engine.environment("Staging", order=2, two_stage=False, app_db=engine.app_databases.create())
        production = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
        first = engine.version("hr_core", "1.0.0")
        engine.deploy("Development", "Staging", [first])
        engine.deploy("Development", "Production", [first])
        release = Actor.person(engine.release)
        singles, continues, ratios = [], [], []
        print("\n| run | single-stage s | of which compile s | Prepare s | Continue s | Continue ÷ single-stage |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n in range(1, runs + 1):
            version = catalog.register_bundle(data=_large_bundle(n, modules), actor=Actor.person(engine.hosts.actor))
            single = engine.plan("Development", "Staging", [version])
            plans.start_plan(actor=release, plan=single)
            single = engine.wait(single, *DONE, timeout_s=900)
            version.refresh_from_db()
            two = engine.plan("Development", "Production", [version])
            plans.start_plan(actor=release, plan=two)
            two = engine.wait(two, PlanState.PREPARED, timeout_s=900)
            plans.continue_plan(actor=release, plan=two)
            two = engine.wait(two, *DONE, timeout_s=900)
            two = DeploymentPlan.objects.get(pk=two.pk)
            # What a user checks: both targets run the new version and its script ran once on each.
            assert engine.running("Staging")["hr_core"] == version.version
            assert engine.running("Production")["hr_core"] == version.version
            assert _rows_inserted(staging, n) == 1 and _rows_inserted(production, n) == 1
            single_s = (single.finished_at - single.started_at).total_seconds()
            prepare_s = (two.prepared_at - two.started_at).total_seconds()
            continue_s = (two.finished_at - two.continued_at).total_seconds()
            singles.append(single_s)
            continues.append(continue_s)
            ratios.append(continue_s / single_s)
            print(
                f"| {n} | {single_s:.2f} | {version.compile_seconds or 0:.2f} | {prepare_s:.2f} "
                f"| {continue_s:.2f} | {continue_s / single_s:.4f} |",
                flush=True,
            )
        spread = f"runs {min(ratios) * 100:.2f}–{max(ratios) * 100:.2f} %"
        row(
            f"window ratio: Continue ÷ single-stage deployment of the large example ({modules} modules), "
            f"median of {runs} runs",
            measured=statistics.median(ratios) * 100,
            unit="%",
            note=f"{spread}; Continue median {statistics.median(continues):.2f} s, "
            f"single-stage median {statistics.median(singles):.1f} s",
        )
        row(
            f"window: Continue of the large example, 2 front-ends, median of {runs} runs",
            measured=statistics.median(continues) * 1000,
            note=f"min {min(continues) * 1000:.0f} ms, max {max(continues) * 1000:.0f} ms",
        )


if __name__ == "__main__":
    sys.exit(main())
