"""The OutSystems CI/CD client itself (outsystems-pipeline 0.11.0, unchanged) against the console:
its package-fetching flow (``fetch_apps_packages``: the running version, its content link, the
download) and its package-deployment flow (``deploy_package_to_target_env``: the package posted to
/environments/{key}/deployment, the plan read, started and polled), with a real stage worker,
agents and front-end servers. The deployed version answers on the target's front-ends.

The client pins requests and packaging to other versions than the console's: it lives in a
virtual environment of its own, made by ``scripts/outsystems_client.sh`` (or named by
``OUTSYSTEMS_CLIENT_PYTHON``); without it this test is skipped and says so.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from deployments.models import ApplicationVersion, DeploymentPlan, PlanState
from environments.models import AccessLevel
from tests.api.conftest import create_token, record_running
from tests.e2e.conftest import engine  # noqa: F401 - the fixture, shared with tests/e2e

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def client_python() -> str | None:
    named = os.environ.get("OUTSYSTEMS_CLIENT_PYTHON")
    if named:
        return named
    default = ROOT / ".data" / "outsystems-client" / "bin" / "python"
    return str(default) if default.exists() else None


def run_client(python: str, module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        # The client's own configuration override: poll every second instead of every 20.
        "OVERRIDE_CONFIG_IN_USE": "True",
        "SLEEP_PERIOD_IN_SECS": "1",
    }
    result = subprocess.run(
        [python, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{module} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def test_the_outsystems_client_fetches_a_package_and_deploys_it_to_another_environment(engine, tmp_path):  # noqa: F811
    python = client_python()
    if python is None:
        pytest.skip("the OutSystems client is not installed: run scripts/outsystems_client.sh")
    engine.start_worker()
    dev = engine.environments["Development"]
    test = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    version = engine.version("hr_core", "1.1.0")
    record_running(dev, version)
    token = create_token("outsystems-client", {dev: AccessLevel.DEPLOY, test: AccessLevel.DEPLOY})
    artifacts = tmp_path / "Artifacts"

    fetched = run_client(
        python,
        "outsystems.pipeline.fetch_apps_packages",
        *("--artifacts", str(artifacts), "--lt_url", engine.console_url, "--lt_token", token),
        *("--source_env", "Development", "--app_list", "hr_core"),
        cwd=tmp_path,
    )
    (package,) = list(artifacts.rglob("*.oap"))
    assert package.name == f"{version.key}.oap", fetched.stdout
    assert hashlib.sha256(package.read_bytes()).hexdigest() == version.bundle_sha256

    deployed = run_client(
        python,
        "outsystems.pipeline.deploy_package_to_target_env",
        *("--artifacts", str(artifacts), "--lt_url", engine.console_url, "--lt_token", token),
        *("--destination_env_label", "Test", "--package_path", str(package)),
        cwd=tmp_path,
    )
    assert "finished with status finished_successful" in deployed.stdout, deployed.stdout
    plan = DeploymentPlan.objects.get(target=test)
    assert plan.state == PlanState.FINISHED_SUCCESSFUL and plan.operations.get().version == version
    assert ApplicationVersion.objects.filter(application__name="hr_core").count() == 1
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
