"""Deployment zones edited with the environment (pages, rights, audit) and named by plans in the API."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from core.actors import Actor
from core.models import AuditEvent
from deployments.api.serializers import default_zone_key
from deployments.models import DeploymentPlan
from environments import services as env_services
from environments.models import AccessLevel, DeploymentZone
from tests.api.conftest import ApiClient, create_token, errors


def test_a_manager_groups_frontends_into_a_zone_and_a_viewer_cannot(client, landscape, admin_user, ops_user):
    prod = landscape["Production"]
    first = prod.frontends.order_by("name").first()
    client.force_login(admin_user)
    response = client.post(
        reverse("environments:zone_create", args=[prod.key]), {"name": "Public", "frontends": [first.pk]}
    )
    assert response.status_code == 302, response.content.decode()[:1000]
    zone = DeploymentZone.objects.get(environment=prod)
    assert zone.name == "Public" and list(zone.frontends.all()) == [first]
    assert AuditEvent.objects.filter(action="zone.created", environment_key=prod.key).exists()
    page = client.get(reverse("environments:detail", args=[prod.key])).content.decode()
    assert "Public" in page and str(zone.key) in page
    # Global is the default zone's name; names are unique per environment.
    again = client.post(reverse("environments:zone_create", args=[prod.key]), {"name": "global"})
    assert again.status_code == 200 and "default zone" in again.content.decode()
    board = client.get(reverse("deployments:board")).content.decode()
    assert f"<b>Public</b> ({first.name})" in board

    client.force_login(ops_user)
    assert client.post(reverse("environments:zone_create", args=[prod.key]), {"name": "Other"}).status_code == 403
    delete = reverse("environments:zone_delete", args=[prod.key, zone.key])
    assert client.post(delete).status_code == 403
    client.force_login(admin_user)
    assert client.post(delete).status_code == 302
    assert not DeploymentZone.objects.exists()


@pytest.fixture
def public_zone(landscape):
    prod = landscape["Production"]
    return env_services.save_zone(
        actor=Actor.system("test"), environment=prod, name="Public", frontends=[prod.frontends.order_by("name").first()]
    )


def _body(landscape, version, zone_key):
    return {
        "ApplicationOperations": [{"ApplicationVersionKey": str(version.key), "DeploymentZoneKey": zone_key}],
        "SourceEnvironmentKey": str(landscape["Development"].key),
        "TargetEnvironmentKey": str(landscape["Production"].key),
    }


def test_the_api_lists_zones_and_a_plan_names_one(api, landscape, hr_core, public_zone):
    prod = landscape["Production"]
    zones = api.get(f"/environments/{prod.key}/deploymentzones").json()
    assert [(z["Key"], z["Name"], z["IsDefault"]) for z in zones] == [
        (default_zone_key(prod), "Global", True),
        (str(public_zone.key), "Public", False),
    ]
    created = api.post("/deployments", _body(landscape, hr_core, str(public_zone.key).upper()))
    assert created.status_code == 201
    plan = DeploymentPlan.objects.get(key=created.json())
    assert plan.operations.get().zone == public_zone
    shown = api.get(f"/deployments/{plan.key}").json()["Deployment"]["ApplicationOperations"][0]
    assert shown["DeploymentZoneKey"] == str(public_zone.key)
    default = api.post("/deployments", _body(landscape, hr_core, default_zone_key(prod)))
    assert DeploymentPlan.objects.get(key=default.json()).operations.get().zone is None
    # PUT keeps the zone when only the notes change.
    assert api.request("PUT", f"/deployments/{plan.key}", {"Notes": "n"}).status_code == 200
    assert plan.operations.get().zone == public_zone


def test_a_zone_of_another_environment_or_unknown_is_refused(api, landscape, hr_core):
    test = landscape["Test"]
    other = env_services.save_zone(actor=Actor.system("test"), environment=test, name="Edge", frontends=[])
    for zone_key in (str(other.key), str(uuid.uuid4()), "zone-1"):
        refused = api.post("/deployments", _body(landscape, hr_core, zone_key))
        assert refused.status_code == 400 and "is not a zone of Production" in errors(refused)
    assert not DeploymentPlan.objects.exists()


def test_a_zone_a_plan_names_cannot_be_deleted(landscape, hr_core, public_zone, pipeline_token):
    ApiClient(pipeline_token).post("/deployments", _body(landscape, hr_core, str(public_zone.key)))
    with pytest.raises(env_services.InvalidInput, match="stays"):
        env_services.delete_zone(actor=Actor.system("test"), zone=public_zone)


def test_zones_need_the_view_right_to_be_listed(landscape, public_zone):
    token = create_token("test-only", {landscape["Test"]: AccessLevel.VIEW})
    assert ApiClient(token).get(f"/environments/{landscape['Production'].key}/deploymentzones").status_code == 403


def test_the_plan_form_offers_the_targets_zones_and_keeps_the_choice(
    client, landscape, release_user, hr_core, public_zone
):
    client.force_login(release_user)
    create_url = (
        reverse("deployments:plan_create")
        + f"?source={landscape['Development'].key}&target={landscape['Production'].key}"
    )
    form = client.get(create_url).content.decode()
    assert f'name="zone_{hr_core.application_id}"' in form and "Public" in form
    fields = {"include": [str(hr_core.application_id)], f"version_{hr_core.application_id}": str(hr_core.key)}
    client.post(create_url, {**fields, f"zone_{hr_core.application_id}": str(public_zone.key), "notes": "n"})
    plan = DeploymentPlan.objects.get()
    assert plan.operations.get().zone == public_zone
    page = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert f'<option value="{public_zone.key}" selected>Public</option>' in page
