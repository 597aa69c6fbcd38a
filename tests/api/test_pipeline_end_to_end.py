"""A CI/CD pipeline driving real deployments through the REST API alone: the console over HTTP
(live_server), a real stage worker, real agents and front-end servers (tests/e2e's ``engine``).

Only the catalog is filled beforehand (the API has no upload); everything else goes over HTTP
with a service account's bearer token, the way pipeline clients poll LifeTime.
"""

from __future__ import annotations

import time

import pytest
import requests

from core.models import AuditEvent
from deployments.models import ApplicationVersion, DeploymentPlan
from environments.models import AccessLevel
from tests.api.conftest import create_token
from tests.e2e.conftest import engine  # noqa: F401 - the fixture, shared with tests/e2e

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FINISHED_OK = {"finished_successful", "finished_with_warnings"}


class Pipeline:
    """What a pipeline script does: plain HTTP calls, exact status codes, polling the status."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = f"{base_url}/lifetimeapi/rest/v2"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    def call(self, method: str, path: str, expected: int, **kwargs) -> requests.Response:
        response = self.session.request(method, self.base + path, allow_redirects=False, timeout=30, **kwargs)
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def deploy(self, source, target, *versions: ApplicationVersion) -> str:
        body = {
            "ApplicationOperations": [{"ApplicationVersionKey": str(v.key), "DeploymentZoneKey": ""} for v in versions],
            "Notes": "pipeline run",
            "SourceEnvironmentKey": str(source.key),
            "TargetEnvironmentKey": str(target.key),
        }
        return self.call("POST", "/deployments/", 201, json=body).json()

    def wait(self, key: str, statuses: set[str], *, info: str = "", timeout_s: float = 180) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.call("GET", f"/deployments/{key}/status/", 200).json()
            if status["DeploymentStatus"] in statuses and (not info or status["Info"] == info):
                return status
            assert status["DeploymentStatus"] not in {"aborted", "finished_with_errors"}, status
            time.sleep(0.2)
        raise AssertionError(f"deployment {key} never reached {statuses}: {status}")

    def running_version(self, env, app: ApplicationVersion) -> str | None:
        response = self.session.get(
            f"{self.base}/environments/{env.key}/applications/{app.application.key}?IncludeEnvStatus=True", timeout=30
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        (status,) = response.json()["AppStatusInEnvs"]
        assert status["EnvironmentKey"] == str(env.key)
        return status["BaseApplicationVersionKey"]


def test_a_pipeline_deploys_in_one_stage_tags_and_deploys_in_two_stages_through_the_api(engine):  # noqa: F811
    engine.start_worker()
    dev = engine.environments["Development"]
    test = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    v100, v110 = engine.version("hr_core", "1.0.0"), engine.version("hr_core", "1.1.0")
    token = create_token("release-pipeline", {env: AccessLevel.DEPLOY for env in (dev, test, prod)})
    api = Pipeline(engine.console_url, token)

    # Single stage (Deploy Now): start runs Prepare and Continue back to back.
    key = api.deploy(dev, test, v100)
    api.call("POST", f"/deployments/{key}/start", 202)
    assert api.call("GET", f"/deployments/{key}/status", 200).json()["DeploymentStatus"] != "saved"
    api.wait(key, FINISHED_OK)
    assert api.running_version(test, v100) == str(v100.key)
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]

    # Tag what runs in Test as 1.0.1.
    path = f"/environments/{test.key}/applications/{v100.application.key}/versions/"
    tagged = api.call("POST", path, 201, json={"Version": "1.0.1", "ChangeLog": "Release candidate"}).json()
    v101 = ApplicationVersion.objects.get(key=tagged["ApplicationVersionKey"])
    assert api.running_version(test, v100) == str(v101.key)

    # Two stages: start prepares only; the target runs nothing new until Continue.
    key = api.deploy(test, prod, v101)
    api.call("POST", f"/deployments/{key}/start/", 202)
    api.wait(key, {"needs_user_intervention"}, info="deployment_prepared")
    assert api.running_version(prod, v101) is None
    listed = api.call("GET", "/deployments?MinDate=2000-01-01&MaxDate=2000-01-02", 200).json()
    assert [d["Key"] for d in listed] == [key], "a prepared plan is listed whatever the dates"
    api.call("POST", f"/deployments/{key}/continue", 202)
    second = api.call("POST", f"/deployments/{key}/continue", 409)
    assert "already running" in second.json()["Errors"][0]
    api.wait(key, FINISHED_OK)
    assert api.running_version(prod, v101) == str(v101.key)
    # The tagged version is the code that ran in Test: its answer is the same.
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]

    # A second two-stage deployment: while prepared, Production keeps running 1.0.1.
    key = api.deploy(test, prod, v110)
    api.call("POST", f"/deployments/{key}/start", 202)
    status = api.wait(key, {"needs_user_intervention"}, info="deployment_prepared")
    assert status["DeploymentLog"] and {m["Type"] for m in status["DeploymentLog"]} <= {"Info", "Warning", "Error"}
    assert api.running_version(prod, v110) == str(v101.key)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    api.call("POST", f"/deployments/{key}/continue/", 202)
    api.wait(key, FINISHED_OK)
    assert api.running_version(prod, v110) == str(v110.key)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    busy = [d for d in api.call("GET", "/deployments", 200).json() if d["TargetEnvironmentKey"] == str(prod.key)]
    assert all(DeploymentPlan.objects.get(key=d["Key"]).api_status in FINISHED_OK for d in busy)

    # Every change was made, and audited, as the service account.
    actors = set(
        AuditEvent.objects.filter(action__in=["plan.created", "plan.started", "plan.continued"]).values_list(
            "actor__username", flat=True
        )
    )
    assert actors == {"release-pipeline"}


def test_a_package_fetched_through_its_content_link_is_deployed_by_posting_its_bytes(engine, tmp_path):  # noqa: F811
    """The OutSystems client's two air-gapped flows, call for call: ``fetch_apps_packages`` (the
    version's content link, then the link fetched with the raw token) and
    ``deploy_package_to_target_env`` (the bytes posted to /environments/{key}/deployment, the plan
    read, started and polled). The catalog forgets the version in between, as a second console
    that never had it: the post registers it again, checked by digest."""
    engine.start_worker()
    dev = engine.environments["Development"]
    test = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    v110 = engine.version("hr_core", "1.1.0")
    token = create_token("air-gap-pipeline", {dev: AccessLevel.DEPLOY, test: AccessLevel.DEPLOY})
    api = Pipeline(engine.console_url, token)

    # fetch_apps_packages: environment key by name, the version, its content link, the download.
    (source,) = [e for e in api.call("GET", "/environments", 200).json() if e["Name"] == "Development"]
    versions = api.call("GET", f"/applications/{v110.application.key}/versions", 200).json()
    assert versions[0]["Key"] == str(v110.key)
    link = api.call("GET", f"/applications/{v110.application.key}/versions/{v110.key}/content", 200).json()
    download = requests.get(link["url"], headers={"authorization": token}, timeout=30)
    assert download.status_code == 200 and download.headers["X-Content-SHA256"] == link["Sha256"]
    package = tmp_path / "hr_core.1.1.0.oap"
    package.write_bytes(download.content)
    assert source["Key"] == str(dev.key)

    api.call("DELETE", f"/applications/{v110.application.key}/versions/{v110.key}", 204)
    assert not ApplicationVersion.objects.filter(key=v110.key).exists()

    # deploy_package_to_target_env: nothing running on the target, the bytes posted, read, started, polled.
    busy = [d for d in api.call("GET", "/deployments", 200).json() if d["TargetEnvironmentKey"] == str(test.key)]
    assert not busy
    posted = requests.post(
        f"{api.base}/environments/{test.key}/deployment",
        data=package.read_bytes(),
        headers={"content-type": "application/octet-stream", "authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert posted.status_code == 201, posted.text
    key = posted.json()
    assert api.call("GET", f"/deployments/{key}", 200).json()["ApplicationConflicts"] == []
    api.call("POST", f"/deployments/{key}/start?RedeployOutdated=False", 202)
    api.wait(key, FINISHED_OK)

    registered = ApplicationVersion.objects.get(application__name="hr_core", version="1.1.0")
    assert registered.key != v110.key and registered.bundle_sha256 == link["Sha256"]
    assert api.running_version(test, registered) == str(registered.key)
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    listed = api.call("GET", f"/applications/{registered.application.key}/versions", 200).json()
    assert [v["Key"] for v in listed] == [str(registered.key)]
