"""Fixtures for the REST API: service accounts with tokens, an API client speaking bearer tokens
and JSON, catalog versions registered through the catalog service."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from core import service_accounts
from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.models import ApplicationVersion, DeploymentPlan, RunningVersion
from deployments.plans import services as plans
from environments import services as env_services
from environments.models import AccessLevel, Environment
from tests.catalog.conftest import example_bundle

API = "/lifetimeapi/rest/v2"


class ApiClient:
    """Calls the API as a pipeline does: bearer token, JSON bodies, no cookies, no redirects followed."""

    def __init__(self, token: str | None) -> None:
        self.client = Client(raise_request_exception=False)
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, headers=None):
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        response = self.client.generic(
            method,
            API + path,
            data=data,
            content_type="application/json",
            headers=self._headers(headers),
        )
        assert response.status_code not in (301, 302, 307, 308), f"{method} {path} redirected"
        if response.status_code >= 400:
            assert response["Content-Type"].startswith("application/json"), response.content[:200]
            payload = response.json()
            assert payload["StatusCode"] == response.status_code and payload["Errors"], payload
        return response

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.request("DELETE", path, **kwargs)


TEST = Actor.system("test")


def errors(response) -> str:
    return " ".join(response.json()["Errors"])


def create_token(name: str, rights: dict[Environment, int], *, actor: Actor = TEST) -> str:
    account, token = service_accounts.create_service_account(actor=actor, name=name)
    for environment, level in rights.items():
        env_services.set_access(actor=actor, user=account.user, environment=environment, level=level)
    return token


@pytest.fixture(autouse=True)
def artifact_store(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def pipeline_token(landscape) -> str:
    """A pipeline allowed to deploy everywhere."""
    return create_token("pipeline", {env: AccessLevel.DEPLOY for env in landscape.values()})


@pytest.fixture
def test_only_token(landscape) -> str:
    """A pipeline that deploys to Development and Test and only views Production."""
    return create_token(
        "test-pipeline",
        {
            landscape["Development"]: AccessLevel.DEPLOY,
            landscape["Test"]: AccessLevel.DEPLOY,
            landscape["Production"]: AccessLevel.VIEW,
        },
    )


@pytest.fixture
def api(pipeline_token) -> ApiClient:
    return ApiClient(pipeline_token)


@pytest.fixture
def register(db, admin_user) -> Callable[[str, str], ApplicationVersion]:
    def register(app: str, version: str) -> ApplicationVersion:
        return catalog.register_bundle(data=example_bundle(app, version), actor=Actor.person(admin_user))

    return register


def record_running(environment: Environment, version: ApplicationVersion, plan: DeploymentPlan | None = None) -> None:
    """What a finished Continue records (deployments.stages.continuation): the unit tests stand in for
    the engine here; tests/api/test_pipeline_end_to_end.py runs the real one."""
    RunningVersion.objects.update_or_create(
        environment=environment,
        application=version.application,
        defaults={"version": version, "since": timezone.now(), "plan": plan, "is_modified": False},
    )


@pytest.fixture
def hr_core(register, landscape) -> ApplicationVersion:
    """HR Core 1.0.0 registered and running in Development."""
    version = register("hr_core", "1.0.0")
    record_running(landscape["Development"], version)
    return version


def saved_plan(actor, source: Environment, target: Environment, versions: list[ApplicationVersion]) -> DeploymentPlan:
    return plans.create_plan(
        actor=Actor.person(actor),
        source=source,
        target=target,
        operations=[plans.Operation(v.application, v) for v in versions],
    )
