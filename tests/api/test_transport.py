"""What every API call has in common: bearer tokens, JSON errors, paths with or without a slash,
no redirects, no cookies, the OpenAPI document."""

from __future__ import annotations

import pytest
from django.test import Client

from core import service_accounts
from core.actors import Actor
from core.models import ServiceAccount
from deployments.api import views
from tests.api.conftest import API, ApiClient, errors

PATHS = [
    "/environments",
    "/applications",
    "/deployments",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("slash", ["", "/"])
def test_a_path_answers_with_and_without_its_trailing_slash_and_never_redirects(api, path, slash):
    response = api.get(path + slash)
    assert response.status_code in (200, 204)


def test_keyed_paths_answer_with_and_without_trailing_slash(api, landscape, hr_core):
    env, app = landscape["Development"].key, hr_core.application.key
    for path in (
        f"/environments/{env}/applications/{app}",
        f"/environments/{env}/deploymentzones",
        f"/applications/{app}",
        f"/applications/{app}/versions",
        f"/applications/{app}/versions/{hr_core.key}",
    ):
        assert api.get(path).status_code == 200, path
        assert api.get(path + "/").status_code == 200, path + "/"


def test_a_body_less_post_with_json_content_type_is_read_as_a_post(api, landscape, hr_core, release_user):
    from tests.api.conftest import saved_plan

    plan = saved_plan(release_user, landscape["Development"], landscape["Test"], [hr_core])
    response = api.client.post(
        f"{API}/deployments/{plan.key}/abort/",
        data=b"",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.token}", "Content-Length": "0"},
    )
    # A saved plan cannot be aborted: the point is that it reached the view as a POST, with JSON back.
    assert response.status_code == 400 and "cannot be aborted" in errors(response)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer lt_00000000.not-a-real-secret", "Token x"],
)
def test_a_missing_or_bad_token_is_a_401_in_json(db, header):
    client = Client()
    headers = {"Authorization": header} if header else {}
    response = client.get(f"{API}/environments", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"Errors": ["Missing, unknown or revoked token."], "StatusCode": 401}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_session_cookie_does_not_authenticate_the_api(client, release_user):
    client.force_login(release_user)
    response = client.get(f"{API}/environments")
    assert response.status_code == 401


def test_a_revoked_token_stops_working_at_once(api, admin_user):
    assert api.get("/environments").status_code == 200
    account = ServiceAccount.objects.get(user__username="pipeline")
    service_accounts.revoke_service_account(actor=Actor.person(admin_user), account=account)
    assert api.get("/environments").status_code == 401


def test_a_token_with_a_wrong_secret_for_a_real_prefix_is_refused(api):
    prefix = api.token.split(".")[0]
    assert ApiClient(prefix + ".wrong-secret").get("/environments").status_code == 401


def test_an_unknown_api_path_is_a_json_404_not_an_html_page(api):
    for path in ("/nothing-here", "/deployments/x/y/z", "/environments/abc/unknown"):
        response = api.get(path)
        assert response.status_code == 404
    anonymous = Client().get(f"{API}/nothing-here")
    assert anonymous.status_code == 404 and anonymous.json()["StatusCode"] == 404


def test_a_wrong_method_is_a_json_405_with_allow(api):
    response = api.request("PUT", "/environments")
    assert response.status_code == 405
    assert "GET" in response["Allow"]
    assert api.request("PATCH", "/deployments").status_code == 405
    # Outside a view (the document is public): still JSON.
    assert api.post("/openapi.json").status_code == 405


def test_an_unexpected_error_is_a_json_500_without_the_traceback(api, monkeypatch):
    def broken(request):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(views, "viewable_environment_ids", broken)
    response = api.get("/environments")
    assert response.status_code == 500
    assert "secret detail" not in response.content.decode()


def test_the_api_sets_no_cookie_and_needs_no_csrf_token(landscape, pipeline_token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"{API}/deployments",
        data=b"{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {pipeline_token}"},
    )
    assert response.status_code == 400  # not 403 from CSRF
    assert not response.cookies


def test_the_openapi_document_is_served_and_describes_every_route(db):
    response = Client().get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for schema in ("Environment", "Application", "ApplicationVersion", "Deployment", "DeploymentStatus", "Error"):
        assert schema in document["components"]["schemas"]
    assert set(document["paths"]) == {
        "/environments/",
        "/environments/{EnvironmentKey}/",
        "/environments/{EnvironmentKey}/applications/",
        "/environments/{EnvironmentKey}/deployment/",
        "/environments/{EnvironmentKey}/applications/{ApplicationKey}/",
        "/environments/{EnvironmentKey}/applications/{ApplicationKey}/versions/",
        "/environments/{EnvironmentKey}/deploymentzones/",
        "/environments/{EnvironmentKey}/frontends/",
        "/environments/{EnvironmentKey}/frontends/{FrontEndKey}/putback/",
        "/applications/",
        "/applications/{ApplicationKey}/",
        "/applications/{ApplicationKey}/versions/",
        "/applications/{ApplicationKey}/versions/{VersionKey}/",
        "/applications/{ApplicationKey}/versions/{VersionKey}/content/",
        "/downloads/{Token}/",
        "/deployments/",
        "/deployments/{DeploymentKey}/",
        "/deployments/{DeploymentKey}/start/",
        "/deployments/{DeploymentKey}/continue/",
        "/deployments/{DeploymentKey}/approve/",
        "/deployments/{DeploymentKey}/reject/",
        "/deployments/{DeploymentKey}/abort/",
        "/deployments/{DeploymentKey}/rollback/",
        "/deployments/{DeploymentKey}/status/",
    }
