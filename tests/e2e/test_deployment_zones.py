"""Deployment zones with the real engine: an application deployed to a zone through the API is
uploaded to and switched on that zone's front-ends only; the others never receive it."""

from __future__ import annotations

import pytest
import requests

from core.actors import Actor
from deployments.models import DeploymentPlan, PlanState
from environments import services as env_services
from environments.models import AccessLevel
from tests.api.conftest import create_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

S = PlanState


def test_an_application_deployed_to_a_zone_lands_only_on_that_zones_frontends(engine):
    engine.start_worker()
    test = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    inside, outside = engine.frontends["Test"]
    zone = env_services.save_zone(actor=Actor.system("test"), environment=test, name="Public", frontends=[inside.row])
    hr = engine.version("hr_core", "1.0.0")
    token = create_token(
        "zoned-pipeline", {engine.environments["Development"]: AccessLevel.VIEW, test: AccessLevel.DEPLOY}
    )
    api = f"{engine.console_url}/lifetimeapi/rest/v2"
    headers = {"Authorization": f"Bearer {token}"}

    zones = requests.get(f"{api}/environments/{test.key}/deploymentzones", headers=headers, timeout=30).json()
    assert [(z["Name"], z["IsDefault"]) for z in zones] == [("Global", True), ("Public", False)]
    body = {
        "ApplicationOperations": [{"ApplicationVersionKey": str(hr.key), "DeploymentZoneKey": zones[1]["Key"]}],
        "Notes": "to the public zone",
        "SourceEnvironmentKey": str(engine.environments["Development"].key),
        "TargetEnvironmentKey": str(test.key),
    }
    created = requests.post(f"{api}/deployments", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    key = created.json()
    details = requests.get(f"{api}/deployments/{key}", headers=headers, timeout=30).json()
    assert details["Deployment"]["ApplicationOperations"][0]["DeploymentZoneKey"] == str(zone.key)
    assert requests.post(f"{api}/deployments/{key}/start", headers=headers, timeout=30).status_code == 202
    plan = engine.wait(DeploymentPlan.objects.get(key=key), S.FINISHED_SUCCESSFUL, S.FINISHED_WITH_WARNINGS)

    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0", "HTTP 404"]
    assert (inside.root / "releases" / "hr_core").is_dir()
    assert not (outside.root / "releases" / "hr_core").exists()
    assert plan.operations.get().zone == zone
