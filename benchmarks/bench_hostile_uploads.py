"""Hostile bundles: what reading each costs the console, against what Python's own readers cost.

Each measurement runs in a fresh subprocess (so that its peak resident memory is its own), with a
time limit: the standard library's reading of some of these archives runs for a long time.

    LIFETIME_DEV=true .venv/bin/python benchmarks/bench_hostile_uploads.py [--stdlib-timeout 60]

"console" is ``deployments.catalog.bundles.read_bundle`` (which refuses each of them); "stdlib" is what
the console did before: ``tarfile.open(mode="r:gz")`` iterated, or ``zipfile.ZipFile`` opened.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "pax header of 900 MB (1 MB tar.gz)": "archives.pax_header_bomb()",
    "pax header of 250 KB (CVE-2024-6232)": "archives.pax_header_quadratic()",
    "zip of 200,000 empty entries": "archives.zip_of_empty_entries()",
    "zip of 200,000 entries declaring 1": "archives.zip_of_empty_entries(200_000, declared=1)",
    "newline in a member name": 'archives.bundle_with_member("src/leave_portal/x\\n../../../evil.py")',
    "manifest nested 100,000 deep": 'archives.bundle_with_manifest("a = " + "[" * 100_000 + "]" * 100_000)',
}

MAKE = """
import os, sys
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
os.environ.setdefault("LIFETIME_DEV", "true")
import django
django.setup()
from tests.security import archives
open(sys.argv[1], "wb").write({expr})
"""

MEASURE = """
import io, json, resource, sys, time
sys.path.insert(0, {root!r})
data = open(sys.argv[1], "rb").read()
how = sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
outcome = "read"
if how == "console":
    from deployments.catalog.bundles import BundleRefused, read_bundle
    try:
        read_bundle(data)
    except BundleRefused as exc:
        outcome = "refused: " + exc.message[:70]
elif data[:2] == b"\\x1f\\x8b":
    import tarfile
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                pass
    except Exception as exc:
        outcome = "error: " + str(exc)[:70]
else:
    import zipfile
    try:
        zipfile.ZipFile(io.BytesIO(data)).infolist()
    except Exception as exc:
        outcome = "error: " + str(exc)[:70]
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "rss_growth_mib": (peak - base) / 1024, "outcome": outcome}}))
"""


def run(code: str, *args: str, timeout: float) -> dict:
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"seconds": None, "rss_growth_mib": None, "outcome": f"still running after {timeout:.0f} s"}
    if result.returncode != 0:
        return {"seconds": None, "rss_growth_mib": None, "outcome": "crashed: " + result.stderr.strip()[-120:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stdlib-timeout", type=float, default=60.0)
    options = parser.parse_args()
    os.environ.setdefault("LIFETIME_DEV", "true")
    print(f"Python {sys.version.split()[0]}")
    print("| archive | size | console s | console RSS MiB | stdlib s | stdlib RSS MiB | stdlib outcome |")
    print("|---|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, expr in CASES.items():
            path = Path(folder) / "archive"
            subprocess.run(
                [sys.executable, "-c", MAKE.format(root=str(ROOT), expr=expr), str(path)], check=True, cwd=ROOT
            )
            size = path.stat().st_size
            console = run(MEASURE.format(root=str(ROOT)), str(path), "console", timeout=60)
            stdlib = {"seconds": None, "rss_growth_mib": None, "outcome": "n/a (not an archive problem)"}
            if "name" not in name and "manifest" not in name:
                stdlib = run(MEASURE.format(root=str(ROOT)), str(path), "stdlib", timeout=options.stdlib_timeout)

            def fmt(value, digits=2):
                return "—" if value is None else f"{value:.{digits}f}"

            print(
                f"| {name} | {size:,} bytes | {fmt(console['seconds'], 3)} | {fmt(console['rss_growth_mib'], 1)} "
                f"| {fmt(stdlib['seconds'])} | {fmt(stdlib['rss_growth_mib'], 0)} | {stdlib['outcome']} |"
            )
            assert console["outcome"].startswith("refused"), console


if __name__ == "__main__":
    main()
