"""The promotion path: a target that deploys only versions that run in the source refuses others,
unless a user with the manage right on it gives a reason (audited); the first environment takes
any version of the catalog."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import PlanState, RunningVersion
from deployments.plans import services as plans
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import PASSWORD, make_user

S = PlanState
SYSTEM = Actor.system("test")


def _only_from_source(env):
    data = {name: getattr(env, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(only_versions_running_in_source=True)
    return env_services.save_environment(actor=SYSTEM, environment=env, data=data)


def _runs(env, version):
    RunningVersion.objects.update_or_create(
        environment=env, application=version.application, defaults={"version": version, "since": timezone.now()}
    )


def _plan(user, source, target, *versions):
    return plans.create_plan(
        actor=Actor.person(user),
        source=source,
        target=target,
        operations=[plans.Operation(v.application, v) for v in versions],
    )


@pytest.fixture
def manager(landscape):
    user = make_user("manager")
    env_services.set_access(actor=SYSTEM, user=user, environment=landscape["Production"], level=AccessLevel.MANAGE)
    for name in ("Development", "Test"):
        env_services.set_access(actor=SYSTEM, user=user, environment=landscape[name], level=AccessLevel.VIEW)
    return user


def test_a_version_that_never_ran_in_the_source_is_refused(landscape, release_user, manager, versions):
    test, prod = landscape["Test"], _only_from_source(landscape["Production"])
    v100, v110 = versions("hr_core", "1.0.0"), versions("hr_core", "1.1.0")
    _runs(test, v100)
    plan = _plan(release_user, test, prod, v110)
    with pytest.raises(plans.NotInSource, match=r"hr_core 1.1.0 does not run in Test \(1.0.0 does\)"):
        plans.start_plan(actor=Actor.person(release_user), plan=plan)
    with pytest.raises(plans.NotInSource, match="Only a user with the manage right on Production"):
        plans.start_plan(actor=Actor.person(release_user), plan=plan, override_reason="trust me")
    plan.refresh_from_db()
    assert plan.state == S.SAVED

    plans.start_plan(actor=Actor.person(manager), plan=plan, override_reason="hotfix built from the release branch")
    plan.refresh_from_db()
    assert plan.state == S.PREPARING
    event = AuditEvent.objects.get(action="plan.promotion_overridden")
    assert event.actor_name == "manager" and event.message == "hotfix built from the release branch"
    assert event.changes == {"not_in_source": ["hr_core 1.1.0 does not run in Test (1.0.0 does)"]}


def test_the_version_that_runs_in_the_source_goes_on(landscape, release_user, versions):
    test, prod = landscape["Test"], _only_from_source(landscape["Production"])
    v100 = versions("hr_core", "1.0.0")
    _runs(test, v100)
    plan = _plan(release_user, test, prod, v100)
    assert plans.promotion_problems(plan) == []
    plans.start_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.PREPARING


def test_the_first_environment_takes_any_version_of_the_catalog(landscape, release_user, versions):
    dev = _only_from_source(landscape["Development"])
    plan = _plan(release_user, landscape["Test"], dev, versions("hr_core", "1.0.0"))
    assert plans.promotion_problems(plan) == []


def test_without_the_option_any_version_goes(landscape, release_user, versions):
    plan = _plan(release_user, landscape["Test"], landscape["Production"], versions("hr_core", "1.1.0"))
    assert plans.promotion_problems(plan) == []


def test_the_plan_page_says_what_does_not_run_in_the_source(client, landscape, release_user, manager, versions):
    prod = _only_from_source(landscape["Production"])
    plan = _plan(release_user, landscape["Test"], prod, versions("hr_core", "1.1.0"))
    client.login(username="release", password=PASSWORD)
    page = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert "hr_core 1.1.0 does not run in Test: Production deploys only versions that run in the source." in page
    assert "Only a user with the manage right on Production may deploy them anyway." in page
    client.login(username="manager", password=PASSWORD)
    page = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert 'aria-label="Reason to deploy versions that do not run in the source"' in page
    response = client.post(reverse("deployments:plan_start", args=[plan.key]), {"reason": "approved exception"})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.state == S.PREPARING


def test_a_new_environment_at_the_end_of_the_path_deploys_only_from_its_source_by_default(client, landscape):
    client.login(username="admin", password=PASSWORD)
    form = client.get(reverse("environments:create")).context["form"]
    assert form.initial == {"order": 4, "only_versions_running_in_source": True}
