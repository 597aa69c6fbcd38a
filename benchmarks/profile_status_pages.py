"""What one request of each status page costs, in-process (Django's test client, no HTTP, no
concurrency): median time, queries and their time in the database, bytes; with ``--profile``, the
cProfile of the plan page and of a live poll whose stages changed.

Runs against the benchmark's database, seeded by bench_status_pages.py (run that once first):

    LIFETIME_DEV=true .venv/bin/python benchmarks/profile_status_pages.py [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LIFETIME_DEV", "true")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifetime_status_bench"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from deployments.models import DeploymentPlan, PlanState  # noqa: E402

POLLER = re.compile(r'<div id="plan-live"([^>]*)>')


def measure(label: str, get: Callable[[], HttpResponse], runs: int = 20) -> HttpResponse:
    get()  # warm: templates compiled, connection open
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        get()
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = get()
    in_db = sum(float(query["time"]) for query in queries.captured_queries) * 1000
    print(
        f"| {label} | {response.status_code} | {statistics.median(times):.1f} | {len(queries)} | {in_db:.0f} | "
        f"{len(response.content)} |"
    )
    return response


def profile(label: str, get: Callable[[], HttpResponse], runs: int = 50) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        get()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    print(f"\n## {label} ({runs} requests)\n{out.getvalue()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true", help="also print cProfile of the plan page and a live poll")
    options = parser.parse_args()
    plan = DeploymentPlan.objects.filter(state=PlanState.APPLYING).first()
    if plan is None:
        raise SystemExit("No running plan: seed the database with bench_status_pages.py first.")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username="bench-ops"))
    page_url = f"/plans/{plan.key}/"
    attrs = POLLER.search(client.get(page_url).content.decode()).group(1)
    live = re.search(r'hx-get="([^"]+)"', attrs).group(1).replace("&amp;", "&")
    etag = re.search(r'"If-None-Match": "([^\']+?)"}', attrs).group(1).replace("\\u0022", '"')
    after = int(re.search(r"after=(\d+)", live).group(1))
    one_line = live.replace(f"after={after}", f"after={after - 1}")
    stages_changed = re.sub(r"view=\w+", "view=old", one_line)

    print("| request | status | median ms | queries | ms in the database | bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    measure("plan page", lambda: client.get(page_url))
    measure("plan live, unchanged", lambda: client.get(live, HTTP_IF_NONE_MATCH=etag))
    measure("plan live, one new line", lambda: client.get(one_line, HTTP_IF_NONE_MATCH=etag))
    measure("plan live, stages changed", lambda: client.get(stages_changed, HTTP_IF_NONE_MATCH=etag))
    measure("board page", lambda: client.get("/board/"))
    board_etag = client.get("/board/live/")["ETag"]
    measure("board live, unchanged", lambda: client.get("/board/live/", HTTP_IF_NONE_MATCH=board_etag))
    measure("plans list, page 200", lambda: client.get("/plans/?page=200"))
    if options.profile:
        profile("plan page", lambda: client.get(page_url))
        profile("plan live, stages changed", lambda: client.get(stages_changed, HTTP_IF_NONE_MATCH=etag))


if __name__ == "__main__":
    main()
