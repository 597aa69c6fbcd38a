"""Upload of the large example's binary to 1 and 2 front-ends, against HTTP download + ``tar -xzf``.

    LIFETIME_DEV=true REDIS_URL=redis://127.0.0.1:6379/2 .venv/bin/python benchmarks/bench_upload.py [--modules 9000] [--rounds 3]

Prepare's upload step (``steps.upload.upload_binaries``): a signed task to each front-end's agent (a
real ``celery -A agent`` worker), which downloads the binary from the console (gunicorn serving
``/artifacts/<sha256>`` with the agent token), checks its digest and unpacks it beside the running
release. The floor, measured in the same run with the same parallelism: ``curl`` of the same URL
piped into ``tar -xzf`` into an empty folder, once per front-end at the same time. A second upload
of a binary already on the front-ends is timed too: it must download nothing. Uses its own console
database (``lifetime_upload_bench`` unless BENCH_DATABASE_URL says otherwise).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("LIFETIME_DEV", "true")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifetime_upload_bench"
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
WORK = Path(tempfile.mkdtemp(prefix="lifetime-bench-upload-"))
os.environ["ARTIFACT_ROOT"] = str(WORK / "artifacts")
subprocess.run([sys.executable, str(ROOT / "scripts" / "ensure_database.py")], check=True)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from report import row  # noqa: E402

from agent import releases  # noqa: E402
from deployments.artifacts import store as artifacts  # noqa: E402
from deployments.catalog.bundles import read_bundle  # noqa: E402
from deployments.steps import ListLog  # noqa: E402
from deployments.steps.compile import build_binary  # noqa: E402
from deployments.steps.upload import Binary, upload_binaries  # noqa: E402
from examples.build import build_bundle  # noqa: E402
from tests.agents.conftest import FrontEndHosts  # noqa: E402
from tests.processes import BIN, free_port  # noqa: E402


def console(port: int) -> subprocess.Popen:
    env = {**os.environ, "DB_CONN_MAX_AGE": "60", "WEB_WORKERS": "2", "WEB_THREADS": "4"}
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "lifetime.wsgi", "-c", str(ROOT / "lifetime" / "gunicorn_conf.py")]
        + ["-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the console did not answer /healthz")


def floor(url: str, count: int) -> float:
    """``count`` times at once: curl the binary with the agent token, straight into tar -xzf."""
    folders = [WORK / f"floor-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    for folder in folders:
        folder.mkdir()
    command = f"curl -sf -H 'Authorization: Bearer {settings.AGENT_TOKEN}' {url} | tar -xzf - -C {{}}"
    started = time.perf_counter()
    running = [subprocess.Popen(["sh", "-c", command.format(folder)]) for folder in folders]
    if any(p.wait() != 0 for p in running):
        raise SystemExit("curl | tar failed")
    seconds = time.perf_counter() - started
    for folder in folders:
        shutil.rmtree(folder)
    return seconds


def serial_floor(url: str) -> float:
    """The agent's order without its checks: download to a file first, then tar -xzf it."""
    folder = WORK / f"serial-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    archive = WORK / f"{folder.name}.tar.gz"
    started = time.perf_counter()
    subprocess.run(
        ["curl", "-sf", "-H", f"Authorization: Bearer {settings.AGENT_TOKEN}", "-o", str(archive), url], check=True
    )
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(folder)], check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(folder)
    archive.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modules", type=int, default=9000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "bench@example.com", uuid.uuid4().hex
    )
    bundle = read_bundle(build_bundle("hr_core", "1.0.0", modules=options.modules))
    data, modules = build_binary(bundle=bundle, bundle_sha256="0" * 64, log=ListLog())
    sha256, size = artifacts.put_bytes(data)
    print(f"binary of hr_core with {modules} modules: {size / 1e6:.1f} MB", flush=True)
    port = free_port()
    web = console(port)
    url = f"http://127.0.0.1:{port}/artifacts/{sha256}"
    hosts = FrontEndHosts(tmp_path=WORK, console_url=f"http://127.0.0.1:{port}", actor=admin)
    try:
        env = hosts.environment("Bench upload")
        frontends = [fe.row for fe in hosts.start(env, 2, health=False)]
        print(
            f"download to a file, then tar -xzf it (one front-end's floor in the agent's order): {serial_floor(url):.2f} s"
        )
        print("| front-ends | upload s (best of rounds) | curl + tar -xzf s (best) | already present ms |")
        print("|---:|---:|---:|---:|")
        for count in (1, 2):
            uploads, floors, again = [], [], []
            for _ in range(options.rounds):
                floors.append(floor(url, count))
                # Nothing on the front-ends yet: each round downloads again.
                for frontend in frontends:
                    shutil.rmtree(releases.application_dir(frontend.releases_root, "hr_core"), ignore_errors=True)
                binary = Binary("hr_core", "1.0.0", sha256)
                started = time.perf_counter()
                result = upload_binaries(frontends=frontends[:count], binaries=[binary], log=ListLog())
                uploads.append(time.perf_counter() - started)
                assert all(u.downloaded for u in result.uploads), "the first upload must download"
                started = time.perf_counter()
                result = upload_binaries(frontends=frontends[:count], binaries=[binary], log=ListLog())
                again.append((time.perf_counter() - started) * 1000)
                skipped = not any(u.downloaded for u in result.uploads)
                assert skipped, "a binary already on the front-end was downloaded again"
            print(f"| {count} | {min(uploads):.2f} | {min(floors):.2f} | {min(again):.1f} |", flush=True)
            row(
                f"upload of a {size / 1e6:.0f} MB binary to {count} front-end(s), best of {options.rounds}",
                measured=min(uploads),
                unit="s",
                floor=min(floors),
                max_ratio=1.5,
                note="floor: curl | tar -xzf, once per front-end at the same time",
            )
            row(
                f"upload of a binary already on {count} front-end(s): nothing downloaded",
                measured=min(again),
                unit="ms",
                note="no download (checked)",
            )
    finally:
        hosts.stop()
        web.terminate()
        web.wait(timeout=20)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
