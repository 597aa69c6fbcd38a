"""Reconciliation of what the agents report with the recorded running versions: the verdict, the
refusals of Prepare and Continue, the page, the API, the notification, and who may Put back.

The agents' reports are written as an agent's answer would be recorded (the end-to-end test in
tests/e2e/test_drift.py drifts a real front-end)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from core.actors import Actor
from deployments.models import DeploymentPlan, NotificationDelivery, NotificationEvent, NotificationKind
from deployments.notifications import services as notifications
from deployments.plans import services as plans
from deployments.stages import drift
from deployments.state.machine import PlanState
from environments import services as env_services
from environments.access import EnvironmentRefused
from environments.models import AccessLevel, FrontEnd
from tests.api.conftest import ApiClient, create_token
from tests.conftest import PASSWORD, make_user

SYSTEM = Actor.system("test")


def _report(fe: FrontEnd, links: dict[str, str | None]) -> None:
    """What an agent's answer to agent.report leaves on the front-end's row."""
    report = {"ok": True, "applications": {app: {"current": release} for app, release in links.items()}}
    FrontEnd.objects.filter(pk=fe.pk).update(last_report=report)


@pytest.fixture
def drifted(landscape):
    prod = landscape["Production"]
    fe1, fe2 = prod.frontends.order_by("name")
    _report(fe1, {})
    _report(fe2, {"hr_core": "1.1.0-abcdef123456"})
    drift.reconcile([prod])
    return prod, fe2


def test_a_front_end_running_what_the_console_does_not_record_is_drifted(drifted):
    prod, fe2 = drifted
    fe2.refresh_from_db()
    assert fe2.drift == [{"application": "hr_core", "recorded": None, "actual": "1.1.0-abcdef123456"}]
    assert fe2.drift_since is not None
    assert [fe.name for fe in drift.drifted_frontends(prod)] == ["fe2"]
    # It comes back: the verdict clears.
    _report(fe2, {"hr_core": None})
    drift.reconcile([prod])
    fe2.refresh_from_db()
    assert fe2.drift == [] and fe2.drift_since is None


def test_prepare_and_continue_are_refused_on_a_drifted_environment_with_a_sentence(drifted, landscape, release_user):
    prod, fe2 = drifted
    plan = plans.create_plan(
        actor=Actor.person(release_user), source=landscape["Test"], target=prod, operations=[], notes="any plan"
    )
    with pytest.raises(drift.Drifted) as refused:
        plans.start_plan(actor=Actor.person(release_user), plan=plan)
    assert "Prepare is refused: Production does not run what the console recorded on front-end fe2" in str(
        refused.value
    )
    assert "hr_core: recorded nothing, runs 1.1.0-abcdef123456" in str(refused.value)
    DeploymentPlan.objects.filter(pk=plan.pk).update(state=PlanState.PREPARED)
    with pytest.raises(drift.Drifted, match="Continue is refused"):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == PlanState.PREPARED


def test_put_back_needs_the_manage_right(drifted, release_user):
    _prod, fe2 = drifted
    with pytest.raises(EnvironmentRefused, match="You need the Manage right on Production"):
        drift.put_back(actor=Actor.person(release_user), frontend=fe2)
    fe2.refresh_from_db()
    assert fe2.drift


def test_the_environment_page_shows_the_drift_and_put_back_only_to_managers(drifted, release_user):
    prod, _fe2 = drifted
    client = Client()
    client.login(username=release_user.username, password=PASSWORD)
    page = client.get(reverse("deployments:environment_running", args=[prod.key]))
    text = page.content.decode()
    assert page.status_code == 200
    assert 'data-drift="fe2"' in text and "1.1.0-abcdef123456" in text
    assert "Put back" not in text
    manager = make_user("manager")
    env_services.set_access(actor=SYSTEM, user=manager, environment=prod, level=AccessLevel.MANAGE)
    client.login(username=manager.username, password=PASSWORD)
    text = client.get(reverse("deployments:environment_running", args=[prod.key])).content.decode()
    assert "Put back" in text
    board = client.get(reverse("deployments:board")).content.decode()
    assert 'data-drift="fe2"' in board


def test_the_api_lists_front_ends_with_their_drift_and_refuses_put_back_without_manage(drifted):
    prod, fe2 = drifted
    api = ApiClient(create_token("viewer", {prod: AccessLevel.DEPLOY}))
    listed = api.get(f"/environments/{prod.key}/frontends/")
    assert listed.status_code == 200
    by_name = {fe["Name"]: fe for fe in listed.json()}
    assert by_name["fe1"]["IsDrifted"] is False
    assert by_name["fe2"]["Drift"] == [{"Application": "hr_core", "Recorded": "", "Actual": "1.1.0-abcdef123456"}]
    assert api.post(f"/environments/{prod.key}/frontends/{fe2.key}/putback").status_code == 403


def test_a_front_end_that_starts_to_drift_is_notified_once(landscape, admin_user):
    prod = landscape["Production"]
    notifications.save_rule(
        actor=Actor.person(admin_user),
        environment=prod,
        kind=NotificationKind.EMAIL,
        target="ops@example.com",
        events=[NotificationEvent.DRIFTED],
    )
    fe2 = prod.frontends.get(name="fe2")
    _report(fe2, {"hr_core": "1.1.0-abcdef123456"})
    drift.reconcile([prod])
    drift.reconcile([prod])  # still drifted: not announced again
    deliveries = list(NotificationDelivery.objects.filter(event=NotificationEvent.DRIFTED))
    assert len(deliveries) == 1
    assert (
        "Front-end fe2 of Production: hr_core: recorded nothing, runs 1.1.0-abcdef123456"
        in (deliveries[0].payload["reason"])
    )


def test_an_application_deployed_to_a_zone_is_not_drifted_on_the_other_front_ends(landscape, versions, release_user):
    """A zone's application runs the recorded release on the zone's front-ends only: the others keep
    what they had, and only a zone front-end running something else is drifted."""
    from django.utils import timezone

    from deployments.models import RunningVersion
    from deployments.steps.switch import releases_for

    prod = landscape["Production"]
    fe1, fe2 = prod.frontends.order_by("name")
    zone = env_services.save_zone(actor=SYSTEM, environment=prod, name="Public", frontends=[fe1])
    version = versions("hr_core", "1.0.0")
    # As compiled (the release folder names the binary's digest).
    version.binary_sha256 = "ab" * 32
    version.save(update_fields=["binary_sha256"])
    plan = plans.create_plan(
        actor=Actor.person(release_user),
        source=landscape["Test"],
        target=prod,
        operations=[plans.Operation(application=version.application, version=version, zone=zone)],
        notes="hr_core to the public zone",
    )
    RunningVersion.objects.create(
        environment=prod, application=version.application, version=version, since=timezone.now(), plan=plan
    )
    release = releases_for([version])["hr_core"]
    _report(fe1, {"hr_core": release})
    _report(fe2, {"hr_core": "0.9.0-0123456789ab"})
    drift.reconcile([prod])
    assert drift.drifted_frontends(prod) == []
    # The zone's own front-end running another release is drifted.
    _report(fe1, {"hr_core": None})
    drift.reconcile([prod])
    assert [fe.name for fe in drift.drifted_frontends(prod)] == [fe1.name]
