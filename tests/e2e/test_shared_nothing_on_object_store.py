"""Several hosts: the console's artifacts on an S3-compatible object store (a real S3 server),
two stage workers and a second web process that share nothing on disk (each its own ARTIFACT_ROOT,
temporary folder and home). Prepare runs on one worker, Continue on the other; Production's agents
download the binaries over HTTP from the second web process, which reads them from the bucket."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from core.actors import Actor
from deployments.models import Stage, StageKind
from deployments.plans import services as plans
from deployments.state.machine import PlanState
from tests.e2e.conftest import table_exists
from tests.processes import BIN, Process, StageWorker, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def host_folders(root: Path) -> dict[str, str]:
    for name in ("artifacts", "tmp", "home"):
        (root / name).mkdir(parents=True)
    return {"ARTIFACT_ROOT": str(root / "artifacts"), "TMPDIR": str(root / "tmp"), "HOME": str(root / "home")}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_prepare_on_one_worker_and_continue_on_another_sharing_only_the_object_store(engine, s3_artifacts, tmp_path):
    def worker(name: str) -> StageWorker:
        env = {**engine._env(), **s3_artifacts["env"], **host_folders(tmp_path / name)}
        process = StageWorker(env, name=name)
        engine.hosts.processes.append(process.start())
        process.wait_ready()
        engine.worker = process
        return process

    port = free_port()
    web = Process(
        "web-b",
        [
            str(BIN / "gunicorn"),
            "lifetime.wsgi",
            "-c",
            "lifetime/gunicorn_conf.py",
            "-b",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "-",
        ],
        {**engine._env(), **s3_artifacts["env"], **host_folders(tmp_path / "web-b"), "WEB_WORKERS": "1"},
    )
    engine.hosts.processes.append(web.start())
    engine.hosts.console_url = f"http://127.0.0.1:{port}"  # what Production's agents download from
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{engine.hosts.console_url}/health/ready", timeout=2):
                break
        except OSError:
            assert web.running and time.monotonic() < deadline, web.log()[-3000:]
            time.sleep(0.2)

    first = worker("stages-a")
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]

    new = [engine.version("hr_core", "1.1.0"), engine.version("leave_portal", "1.1.0")]
    plan = engine.plan("Development", "Production", new)
    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    first.stop()

    second = worker("stages-b")
    plans.continue_plan(actor=Actor.person(engine.release), plan=plan)
    plan = engine.wait(plan, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert engine.answers("Production", "/leave_portal") == ["leave_portal 1.1.0", "leave_portal 1.1.0"]
    assert table_exists(prod, "hr_core", "payslip")
    assert engine.running("Production") == {"hr_core": "1.1.0", "leave_portal": "1.1.0"}

    stages = {s.kind: s.worker for s in Stage.objects.filter(plan=plan)}
    assert stages[StageKind.PREPARE].startswith("stages-a") and stages[StageKind.CONTINUE].startswith("stages-b")

    # A Deploy Now to Test on the second worker finds the binaries the first one compiled, in the bucket.
    again = engine.deploy("Development", "Test", new)
    log = "\n".join(again.log_lines.values_list("message", flat=True))
    assert "hr_core 1.1.0 is already compiled" in log
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    second.stop()

    # Everything was in the bucket: bundles and binaries, named by digest; nothing on either host.
    client = s3_artifacts["server"].client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_artifacts["bucket"]).get("Contents", [])]
    for version in (*new, engine.version("hr_core", "1.0.0")):
        version.refresh_from_db()
        assert f"artifacts/{version.bundle_sha256[:2]}/{version.bundle_sha256}" in keys
        assert f"artifacts/{version.binary_sha256[:2]}/{version.binary_sha256}" in keys
    assert "GET /artifacts/" in web.log(), "Production's agents downloaded from the second web process"
    for name in ("stages-a", "stages-b", "web-b"):
        assert files_under(tmp_path / name / "artifacts") == []
    assert not Path(engine.settings.ARTIFACT_ROOT).exists()
