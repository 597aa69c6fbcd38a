"""E1-E4 and A1-A4: environments, running applications, deployment zones, Tag Version, the catalog."""

from __future__ import annotations

import re
import uuid

import pytest

from core.models import AuditEvent
from deployments.api.serializers import default_zone_key
from deployments.catalog.bundles import read_bundle
from deployments.catalog.store import bundle_of
from deployments.models import ApplicationVersion, RunningVersion
from tests.api.conftest import ApiClient, create_token, errors, record_running

UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


# --- E1 -------------------------------------------------------------------------------------


def test_environments_are_listed_in_promotion_order(api, landscape):
    body = api.get("/environments").json()
    assert [e["Name"] for e in body] == ["Development", "Test", "Production"]
    prod = body[2]
    assert prod["Key"] == str(landscape["Production"].key)
    assert prod["EnvironmentType"] == "Production" and prod["NumberOfFrontEnds"] == 2 and prod["Order"] == 3
    assert prod["DetailsURL"].endswith(f"/environments/{landscape['Production'].key}/")
    assert set(prod) >= {"OSVersion", "HostName", "UseHTTPS", "ApplicationServerType", "ApplicationServer"}
    assert set(prod) >= {"DatabaseProvider", "IsCloudEnvironment"}


def test_an_account_sees_only_the_environments_it_has_a_right_on(landscape):
    token = create_token("viewer", {landscape["Test"]: 1})
    assert [e["Name"] for e in ApiClient(token).get("/environments").json()] == ["Test"]
    assert ApiClient(create_token("nothing", {})).get("/environments").status_code == 204


# --- E2 -------------------------------------------------------------------------------------


def test_the_running_application_reports_this_environment(api, landscape, hr_core):
    dev = landscape["Development"]
    response = api.get(f"/environments/{dev.key}/applications/{hr_core.application.key}?IncludeEnvStatus=True")
    assert response.status_code == 200
    body = response.json()
    assert body["Name"] == "hr_core" and body["Kind"] == "WebResponsive" and body["Key"] == str(hr_core.application.key)
    (status,) = body["AppStatusInEnvs"]
    assert status["EnvironmentKey"] == str(dev.key)
    assert status["BaseApplicationVersionKey"] == str(hr_core.key)
    assert status["BaseApplicationVersionLabel"] == "1.0.0"
    assert status["IsModified"] is False and status["MobileAppsStatus"] == []
    assert status["DeploymentZoneKey"] == default_zone_key(dev)
    # Without IncludeEnvStatus the entry is still there: clients read it.
    plain = api.get(f"/environments/{dev.key}/applications/{hr_core.application.key}?IncludeEnvStatus=false")
    assert plain.json()["AppStatusInEnvs"] == body["AppStatusInEnvs"]


def test_an_application_that_does_not_run_in_the_environment_is_a_404(api, landscape, hr_core):
    response = api.get(f"/environments/{landscape['Test'].key}/applications/{hr_core.application.key}")
    assert response.status_code == 404 and "does not run in Test" in errors(response)


@pytest.mark.parametrize("flag", ["True", "FALSE", "true", "False"])
def test_booleans_are_read_in_any_case(api, landscape, hr_core, flag):
    path = f"/environments/{landscape['Development'].key}/applications/{hr_core.application.key}"
    assert api.get(f"{path}?IncludeEnvStatus={flag}&IncludeModules={flag}").status_code == 200


def test_a_bad_boolean_is_a_400(api, landscape, hr_core):
    path = f"/environments/{landscape['Development'].key}/applications/{hr_core.application.key}"
    response = api.get(f"{path}?IncludeEnvStatus=yes")
    assert response.status_code == 400 and "IncludeEnvStatus must be True or False" in errors(response)
    assert api.get("/applications?IncludeModules=1").status_code == 400


def test_unknown_or_malformed_keys_are_404s(api, landscape, hr_core):
    dev = landscape["Development"]
    assert api.get(f"/environments/{uuid.uuid4()}/applications/{hr_core.application.key}").status_code == 404
    assert api.get(f"/environments/{dev.key}/applications/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/environments/not-a-key/applications/{hr_core.application.key}").status_code == 404
    assert api.get(f"/environments/{str(dev.key).upper()}/applications/{hr_core.application.key}").status_code == 200


def test_an_environment_without_the_view_right_is_a_403(landscape, hr_core):
    token = create_token("test-only", {landscape["Test"]: 2})
    client = ApiClient(token)
    dev = landscape["Development"]
    assert client.get(f"/environments/{dev.key}/applications/{hr_core.application.key}").status_code == 403
    assert client.get(f"/environments/{dev.key}/deploymentzones").status_code == 403


# --- E3 -------------------------------------------------------------------------------------


def test_each_environment_has_one_default_deployment_zone(api, landscape):
    prod = landscape["Production"]
    (zone,) = api.get(f"/environments/{prod.key}/deploymentzones/").json()
    assert zone["Key"] == default_zone_key(prod) and zone["IsDefault"] is True
    assert set(zone["DeploymentTechnology"]) == {"Key", "Name"}
    assert api.get(f"/environments/{uuid.uuid4()}/deploymentzones").status_code == 404


# --- E4 -------------------------------------------------------------------------------------


def test_tag_version_turns_what_runs_into_a_new_version(api, landscape, hr_core):
    dev = landscape["Development"]
    RunningVersion.objects.filter(environment=dev).update(is_modified=True)
    path = f"/environments/{dev.key}/applications/{hr_core.application.key}/versions"
    response = api.post(path, {"ChangeLog": "Tagged by the pipeline", "Version": "1.0.1", "MobileVersions": None})
    assert response.status_code == 201
    key = response.json()["ApplicationVersionKey"]
    tagged = ApplicationVersion.objects.get(key=key)
    assert tagged.version == "1.0.1" and tagged.change_log == "Tagged by the pipeline"
    assert tagged.created_by.username == "pipeline"
    bundle = bundle_of(tagged)
    assert bundle.manifest.version == "1.0.1"
    # Same code and data model as what ran: only the label changed.
    original = bundle_of(hr_core)
    assert bundle.sources() == original.sources()
    assert bundle.manifest.data_model == original.manifest.data_model
    assert read_bundle(open_bytes(tagged)).manifest.change_log == "Tagged by the pipeline"

    status = api.get(f"/environments/{dev.key}/applications/{hr_core.application.key}").json()["AppStatusInEnvs"][0]
    assert status["BaseApplicationVersionKey"] == key and status["IsModified"] is False
    assert AuditEvent.objects.filter(action="application_version.tagged", actor__username="pipeline").exists()
    versions = api.get(f"/applications/{hr_core.application.key}/versions").json()
    assert [v["Version"] for v in versions] == ["1.0.1", "1.0.0"]


def open_bytes(version: ApplicationVersion) -> bytes:
    from deployments.artifacts import store as artifacts

    with artifacts.open_blob(version.bundle_sha256) as handle:
        return handle.read()


@pytest.mark.parametrize(
    "body, message",
    [
        ({"Version": "1.0.0", "ChangeLog": ""}, "already registered"),
        ({"Version": "one", "ChangeLog": ""}, "not a PEP 440 version"),
        ({"Version": "1.0.01"}, "normal PEP 440 form"),
        ({"ChangeLog": "no version"}, "Version is required"),
        ({"Version": "2.0.0", "ChangeLog": 3}, "ChangeLog must be a string"),
        ({"Version": "2.0.0", "MobileVersions": "x"}, "MobileVersions must be a list"),
    ],
)
def test_tag_version_refuses_bad_or_used_versions(api, landscape, hr_core, body, message):
    path = f"/environments/{landscape['Development'].key}/applications/{hr_core.application.key}/versions/"
    response = api.post(path, body)
    assert response.status_code == 400 and message in errors(response)
    assert ApplicationVersion.objects.count() == 1


def test_tag_version_bodies_that_are_not_json_objects_are_400s(api, landscape, hr_core):
    path = f"/environments/{landscape['Development'].key}/applications/{hr_core.application.key}/versions"
    assert api.post(path, raw=b"{not json").status_code == 400
    assert api.post(path, raw=b"[1, 2]").status_code == 400
    assert api.post(path).status_code == 400


def test_tag_version_needs_the_deploy_right_and_a_running_version(landscape, hr_core, register):
    viewer = ApiClient(create_token("viewer", {landscape["Development"]: 1, landscape["Test"]: 2}))
    dev, test = landscape["Development"], landscape["Test"]
    response = viewer.post(
        f"/environments/{dev.key}/applications/{hr_core.application.key}/versions", {"Version": "9.0"}
    )
    assert response.status_code == 403
    response = viewer.post(
        f"/environments/{test.key}/applications/{hr_core.application.key}/versions", {"Version": "9.0"}
    )
    assert response.status_code == 404 and "does not run in Test" in errors(response)
    assert ApplicationVersion.objects.count() == 1


# --- A1-A4 ----------------------------------------------------------------------------------


def test_applications_are_listed_with_their_status_where_they_run(api, landscape, hr_core, register):
    portal = register("leave_portal", "1.0.0")
    record_running(landscape["Development"], portal)
    record_running(landscape["Test"], portal)
    body = api.get("/applications?IncludeEnvStatus=True&IncludeModules=False").json()
    assert [a["Name"] for a in body] == ["hr_core", "leave_portal"]
    portal_status = body[1]["AppStatusInEnvs"]
    assert [s["EnvironmentKey"] for s in portal_status] == [
        str(landscape["Development"].key),
        str(landscape["Test"].key),
    ]
    assert "AppStatusInEnvs" not in api.get("/applications").json()[0]


def test_no_applications_is_a_204(api):
    assert api.get("/applications").status_code == 204


def test_an_application_and_its_versions_newest_first(api, hr_core, register):
    newer = register("hr_core", "1.1.0")
    app = hr_core.application
    detail = api.get(f"/applications/{app.key}?IncludeEnvStatus=True").json()
    assert detail["Key"] == str(app.key) and len(detail["AppStatusInEnvs"]) == 1
    versions = api.get(f"/applications/{app.key}/versions").json()
    assert [v["Version"] for v in versions] == ["1.1.0", "1.0.0"]
    assert versions[0]["Key"] == str(newer.key) and versions[0]["InUse"] is False and versions[1]["InUse"] is True
    assert [v["Version"] for v in api.get(f"/applications/{app.key}/versions?MaximumVersionsToReturn=1").json()] == [
        "1.1.0"
    ]
    assert api.get(f"/applications/{app.key}/versions?MaximumVersionsToReturn=0").status_code == 204
    assert api.get(f"/applications/{app.key}/versions?MaximumVersionsToReturn=-1").status_code == 400
    assert api.get(f"/applications/{app.key}/versions?MaximumVersionsToReturn=many").status_code == 400
    one = api.get(f"/applications/{app.key}/versions/{hr_core.key}").json()
    assert one["Version"] == "1.0.0" and one["ChangeLog"] and one["CreatedOn"].endswith("Z")
    assert one["ApplicationKey"] == str(app.key) and one["MobileVersions"] == []
    for key in ("Key", "ApplicationKey"):
        assert re.match(UUID_RE, one[key])


def test_unknown_applications_and_versions_are_404s(api, hr_core, register):
    portal = register("leave_portal", "1.0.0")
    app = hr_core.application
    assert api.get(f"/applications/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/applications/{uuid.uuid4()}/versions").status_code == 404
    assert api.get(f"/applications/{app.key}/versions/{uuid.uuid4()}").status_code == 404
    # A version of another application is not a version of this one.
    assert api.get(f"/applications/{app.key}/versions/{portal.key}").status_code == 404


def test_an_account_without_any_right_cannot_read_applications(db, hr_core):
    client = ApiClient(create_token("nobody", {}))
    assert client.get(f"/applications/{hr_core.application.key}").status_code == 403
    assert client.get(f"/applications/{hr_core.application.key}/versions").status_code == 403
    assert client.get("/applications").status_code == 204
