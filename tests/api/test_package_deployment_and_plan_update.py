"""POST /environments/{key}/deployment (a package's bytes, digest checked, registered or found in
the catalog, a saved plan created) and PUT /deployments/{key} (a saved plan changed)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.test import Client

from core.models import AuditEvent
from deployments.catalog.store import bundle_of
from deployments.models import ApplicationVersion, DeploymentPlan, PlanState
from environments.models import AccessLevel
from tests.api.conftest import API, ApiClient, create_token, errors, record_running, saved_plan
from tests.catalog.conftest import example_bundle


def post_package(token: str, environment_key, data: bytes, *, sha256: str | None = None, query: str = ""):
    headers = {"Authorization": f"Bearer {token}"}
    if sha256 is not None:
        headers["X-Content-SHA256"] = sha256
    response = Client().post(
        f"{API}/environments/{environment_key}/deployment{query}",
        data=data,
        content_type="application/octet-stream",
        headers=headers,
    )
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json")
    return response


def test_a_posted_package_is_registered_and_a_saved_plan_deploys_it(pipeline_token, landscape):
    test = landscape["Test"]
    data = example_bundle("hr_core", "1.1.0")
    response = post_package(pipeline_token, test.key, data, sha256=hashlib.sha256(data).hexdigest().upper())
    assert response.status_code == 201, response.content
    plan = DeploymentPlan.objects.get(key=response.json())
    assert plan.state == PlanState.SAVED and plan.target == test and plan.source == test
    version = plan.operations.get().version
    assert (version.application.name, version.version) == ("hr_core", "1.1.0")
    assert version.bundle_sha256 == hashlib.sha256(data).hexdigest()
    assert "sha256" in plan.notes
    assert AuditEvent.objects.filter(action="application_version.registered", object_key=str(version.key)).exists()
    assert AuditEvent.objects.filter(action="plan.created", object_key=str(plan.key)).exists()
    details = ApiClient(pipeline_token).get(f"/deployments/{plan.key}").json()
    assert details["ApplicationConflicts"] == [] and details["Deployment"]["TargetEnvironmentKey"] == str(test.key)


def test_the_same_package_posted_again_reuses_the_catalog_version(pipeline_token, landscape, register):
    version = register("hr_core", "1.0.0")
    data = example_bundle("hr_core", "1.0.0")
    assert bundle_of(version).manifest.version == "1.0.0"
    response = post_package(pipeline_token, landscape["Production"].key, data)
    assert response.status_code == 201
    assert DeploymentPlan.objects.get(key=response.json()).operations.get().version == version
    assert ApplicationVersion.objects.filter(application__name="hr_core").count() == 1


def test_a_package_whose_version_exists_with_other_bytes_is_refused(pipeline_token, landscape, register):
    register("hr_core", "1.0.0")
    other = example_bundle("hr_core", "1.0.0", {"app/extra.txt": b"changed"})
    response = post_package(pipeline_token, landscape["Test"].key, other)
    assert response.status_code == 400 and "other content" in " ".join(response.json()["Errors"])
    assert not DeploymentPlan.objects.exists()


@pytest.mark.parametrize(
    "data, sha, message",
    [
        (b"", None, "must be the package"),
        (b"not an archive", None, "Not a bundle"),
        (None, "0" * 64, "not the"),
    ],
)
def test_a_bad_package_is_refused_before_anything_is_stored(pipeline_token, landscape, data, sha, message):
    body = data if data is not None else example_bundle("hr_core", "1.1.0")
    response = post_package(pipeline_token, landscape["Test"].key, body, sha256=sha)
    assert response.status_code == 400 and message in " ".join(response.json()["Errors"])
    assert not ApplicationVersion.objects.exists() and not DeploymentPlan.objects.exists()


def test_posting_a_package_needs_the_deploy_right_on_that_environment(test_only_token, landscape):
    data = example_bundle("hr_core", "1.1.0")
    assert post_package(test_only_token, landscape["Production"].key, data).status_code == 403
    assert post_package(test_only_token, uuid.uuid4(), data).status_code == 404
    assert post_package("lt_x.y", landscape["Test"].key, data).status_code == 401
    assert not ApplicationVersion.objects.exists()


# --- PUT /deployments/{key} -------------------------------------------------------------------


def test_a_saved_plan_is_changed_by_put(api, landscape, register, release_user):
    dev, test = landscape["Development"], landscape["Test"]
    hr, portal = register("hr_core", "1.0.0"), register("leave_portal", "1.0.0")
    record_running(dev, hr)
    record_running(dev, portal)
    plan = saved_plan(release_user, dev, test, [hr])
    body = {"ApplicationOperations": [{"ApplicationVersionKey": str(portal.key), "DeploymentZoneKey": ""}]}
    response = api.request("PUT", f"/deployments/{plan.key}", {**body, "Notes": "now the portal"})
    assert response.status_code == 200, response.content
    assert response.json()["Notes"] == "now the portal"
    assert [op["ApplicationVersionKey"] for op in response.json()["ApplicationOperations"]] == [str(portal.key)]
    assert [op.version for op in plan.operations.all()] == [portal]
    assert AuditEvent.objects.filter(action="plan.saved", object_key=str(plan.key)).exists()
    # Notes alone: the operations stay.
    assert api.request("PUT", f"/deployments/{plan.key}/", {"Notes": "again"}).status_code == 200
    assert [op.version for op in plan.operations.all()] == [portal]


def test_put_refuses_a_started_plan_a_bad_body_and_a_token_without_deploy(
    api, landscape, register, release_user, test_only_token
):
    dev, prod = landscape["Development"], landscape["Production"]
    hr = register("hr_core", "1.0.0")
    record_running(dev, hr)
    plan = saved_plan(release_user, dev, prod, [hr])
    path = f"/deployments/{plan.key}"
    assert ApiClient(test_only_token).request("PUT", path, {"Notes": "x"}).status_code == 403
    assert api.request("PUT", path, raw=b"[1]").status_code == 400
    bad = api.request("PUT", path, {"ApplicationOperations": [{"ApplicationVersionKey": str(uuid.uuid4())}]})
    assert bad.status_code == 400 and "No application version" in errors(bad)
    assert api.request("PUT", f"/deployments/{uuid.uuid4()}", {"Notes": "x"}).status_code == 404
    assert api.post(f"{path}/start").status_code == 202
    started = api.request("PUT", path, {"Notes": "too late"})
    assert started.status_code == 400 and "Only a saved plan" in errors(started)


def test_a_viewer_cannot_post_packages(landscape):
    token = create_token("viewer", {landscape["Test"]: AccessLevel.VIEW})
    assert post_package(token, landscape["Test"].key, example_bundle("hr_core", "1.1.0")).status_code == 403


def test_continue_with_errors_is_accepted_and_a_plan_with_errors_still_does_not_start(
    api, landscape, register, release_user
):
    dev, prod = landscape["Development"], landscape["Production"]
    portal = register("leave_portal", "1.0.0")  # needs hr_core, which Production does not run
    record_running(dev, portal)
    plan = saved_plan(release_user, dev, prod, [portal])
    conflicts = api.get(f"/deployments/{plan.key}").json()["ApplicationConflicts"]
    assert conflicts and "hr_core" in conflicts[0]["Message"]
    refused = api.post(f"/deployments/{plan.key}/start?RedeployOutdated=False&ContinueWithErrors=True")
    assert refused.status_code == 400 and "hr_core" in errors(refused)
    plan.refresh_from_db()
    assert plan.state == PlanState.SAVED
