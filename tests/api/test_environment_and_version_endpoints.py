"""GET /environments/{key}, GET /environments/{key}/applications, a version's content (a signed,
time-limited link) and DELETE of a version: success and error codes, rights, audit."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.test import Client

from core import service_accounts
from core.actors import Actor
from core.models import AuditEvent, ServiceAccount
from deployments.models import ApplicationVersion
from environments.models import AccessLevel
from tests.api.conftest import ApiClient, create_token, errors, record_running, saved_plan


def test_one_environment_is_answered_with_lifetimes_shape(api, landscape):
    prod = landscape["Production"]
    body = api.get(f"/environments/{prod.key}").json()
    assert body["Key"] == str(prod.key) and body["Name"] == "Production"
    assert body["EnvironmentType"] == "Production" and body["NumberOfFrontEnds"] == 2 and body["Order"] == 3
    assert api.get(f"/environments/{prod.key}/").status_code == 200


def test_one_environment_needs_the_view_right_and_an_existing_key(landscape):
    client = ApiClient(create_token("test-only", {landscape["Test"]: AccessLevel.VIEW}))
    assert client.get(f"/environments/{landscape['Production'].key}").status_code == 403
    assert client.get(f"/environments/{uuid.uuid4()}").status_code == 404
    assert client.get("/environments/not-a-key").status_code == 404
    assert ApiClient("lt_bogus.token").get(f"/environments/{landscape['Test'].key}").status_code == 401


def test_the_applications_of_an_environment_are_those_running_there(api, landscape, register):
    dev, test = landscape["Development"], landscape["Test"]
    hr = register("hr_core", "1.0.0")
    portal = register("leave_portal", "1.0.0")
    record_running(dev, hr)
    record_running(dev, portal)
    record_running(test, hr)
    body = api.get(f"/environments/{dev.key}/applications?IncludeEnvStatus=True&IncludeModules=false").json()
    assert [a["Name"] for a in body] == ["hr_core", "leave_portal"]
    (status,) = body[0]["AppStatusInEnvs"]
    assert status["EnvironmentKey"] == str(dev.key) and status["BaseApplicationVersionKey"] == str(hr.key)
    plain = api.get(f"/environments/{test.key}/applications").json()
    assert [a["Name"] for a in plain] == ["hr_core"] and "AppStatusInEnvs" not in plain[0]
    assert api.get(f"/environments/{landscape['Production'].key}/applications").status_code == 204
    assert api.get(f"/environments/{dev.key}/applications?IncludeEnvStatus=maybe").status_code == 400
    assert api.get(f"/environments/{uuid.uuid4()}/applications").status_code == 404
    viewer = ApiClient(create_token("viewer", {test: AccessLevel.VIEW}))
    assert viewer.get(f"/environments/{dev.key}/applications").status_code == 403


def _content(api: ApiClient, version: ApplicationVersion):
    return api.get(f"/applications/{version.application.key}/versions/{version.key}/content")


def test_a_versions_content_is_a_signed_link_to_its_package_checked_by_digest(api, register):
    version = register("hr_core", "1.0.0")
    response = _content(api, version)
    assert response.status_code == 200
    body = response.json()
    assert body["Sha256"] == version.bundle_sha256 and body["Size"] == version.bundle_size
    # The OutSystems client fetches the link with its raw token, not "Bearer ...": the link is the credential.
    download = Client().get(body["url"], headers={"Authorization": "not-a-bearer-token"})
    assert download.status_code == 200
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == version.bundle_sha256 == download["X-Content-SHA256"]
    assert download["Content-Disposition"].endswith('hr_core-1.0.0.oap"')
    event = AuditEvent.objects.get(action="application_version.content_link")
    assert event.object_key == str(version.key) and event.actor_name


def test_a_content_link_stops_working_when_expired_forged_or_its_account_revoked(
    api, register, settings, pipeline_token
):
    version = register("hr_core", "1.0.0")
    url = _content(api, version).json()["url"]
    forged = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
    assert Client().get(forged).status_code == 403
    settings.CONTENT_LINK_SECONDS = -1
    expired = Client().get(url)
    assert expired.status_code == 403 and "expired" in expired.json()["Errors"][0]
    settings.CONTENT_LINK_SECONDS = 900
    assert Client().get(url).status_code == 200
    account = ServiceAccount.objects.get(token_prefix=pipeline_token.partition(".")[0])
    service_accounts.revoke_service_account(actor=Actor.system("test"), account=account)
    assert Client().get(url).status_code == 403


def test_a_versions_content_needs_the_deploy_right_somewhere(landscape, register):
    version = register("hr_core", "1.0.0")
    viewer = ApiClient(create_token("viewer", {landscape["Production"]: AccessLevel.VIEW}))
    assert _content(viewer, version).status_code == 403
    deployer = ApiClient(create_token("dev-deployer", {landscape["Development"]: AccessLevel.DEPLOY}))
    assert _content(deployer, version).status_code == 200
    assert deployer.get(f"/applications/{version.application.key}/versions/{uuid.uuid4()}/content").status_code == 404


def test_a_version_nothing_uses_is_deleted_and_one_in_use_is_refused(api, landscape, register, release_user):
    unused = register("hr_core", "1.0.0")
    running = register("hr_core", "1.1.0")
    planned = register("leave_portal", "1.0.0")
    record_running(landscape["Test"], running)
    saved_plan(release_user, landscape["Development"], landscape["Test"], [planned])

    path = f"/applications/{unused.application.key}/versions/{unused.key}"
    viewer = ApiClient(create_token("viewer", {landscape["Test"]: AccessLevel.VIEW}))
    assert viewer.delete(path).status_code == 403
    assert api.delete(path).status_code == 204
    assert not ApplicationVersion.objects.filter(pk=unused.pk).exists()
    assert api.delete(path).status_code == 404
    assert AuditEvent.objects.filter(action="application_version.deleted", object_key=str(unused.key)).exists()

    for version in (running, planned):
        refused = api.delete(f"/applications/{version.application.key}/versions/{version.key}/")
        assert refused.status_code == 400 and "in use" in errors(refused)
        assert ApplicationVersion.objects.filter(pk=version.pk).exists()


@pytest.mark.parametrize("path", ["/environments/{env}", "/environments/{env}/applications"])
def test_the_new_reads_refuse_writes(api, landscape, path):
    response = api.post(path.format(env=landscape["Test"].key), {})
    assert response.status_code == 405
