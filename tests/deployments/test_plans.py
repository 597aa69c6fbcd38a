"""Plans without the engine running: validation, holding a target, the buttons' rules, rights."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from core.actors import Actor
from deployments.models import DeploymentPlan, MobileAppConfig, PlanState, Stage, StageState
from deployments.plans import services as plans
from deployments.state import moves
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import make_user

S = PlanState


def _plan(landscape, user, ops, target="Production"):
    return plans.create_plan(
        actor=Actor.person(user),
        source=landscape["Development"],
        target=landscape[target],
        operations=[plans.Operation(v.application, v) for v in ops],
    )


TEST = Actor.system("test")


def _prepared(plan, actor=TEST):
    """Move a plan through Prepare as the stage runner does, without running it."""
    moves.move_plan(plan, expected={S.SAVED}, to=S.PREPARING, actor=actor, reason="Prepare Deployment")
    moves.move_plan(
        plan,
        expected={S.PREPARING},
        to=S.PREPARED,
        actor=Actor.system("system"),
        fields={
            "prepared_at": plan.created_at,
            "prepared_snapshot": {"running": {}, "frontends": ["fe1", "fe2"], "fingerprints": {}},
        },
    )
    return plan


def test_a_plan_whose_dependency_is_missing_cannot_start_and_the_producer_is_offered(landscape, release_user, versions):
    hr = versions("hr_core", "1.1.0")
    leave = versions("leave_portal", "1.1.0")
    from django.utils import timezone

    from deployments.models import RunningVersion

    RunningVersion.objects.create(
        environment=landscape["Development"], application=hr.application, version=hr, since=timezone.now()
    )
    plan = _plan(landscape, release_user, [leave])
    validation = plans.validate_plan(plan)
    assert not validation.ok
    assert "leave_portal 1.1.0 needs hr_core >=1.1,<2" in validation.errors[0]
    assert [s.application.name for s in validation.suggestions] == ["hr_core"]
    with pytest.raises(plans.PlanInvalid):
        plans.start_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.SAVED
    plans.add_suggestion(actor=Actor.person(release_user), plan=plan, application=hr.application)
    assert plans.validate_plan(plan).ok


def test_a_mobile_app_must_be_configured_in_the_target_first(landscape, release_user, versions, admin_user):
    mobile = versions("field_inspector", "1.0.0")
    plan = _plan(landscape, release_user, [mobile])
    assert "configure the mobile app field_inspector in Production first" in plans.validate_plan(plan).errors
    MobileAppConfig.objects.create(
        environment=landscape["Production"],
        application=mobile.application,
        app_identifier="com.example.fi",
        server_url="https://prod.example.com",
    )
    assert plans.validate_plan(plan).ok


def test_start_moves_to_running_before_returning_and_queues_prepare(landscape, release_user, versions):
    plan = _plan(landscape, release_user, [versions("hr_core", "1.0.0")])
    plans.start_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.PREPARING and plan.started_by == release_user
    assert list(plan.stages.values_list("kind", "status")) == [("prepare", "queued")]
    transition = plan.transitions.get()
    assert (transition.from_state, transition.to_state, transition.actor_name) == (S.SAVED, S.PREPARING, "release")


def test_a_prepared_plan_holds_its_target_and_says_which_plan_holds_it(landscape, release_user, versions):
    v = versions("hr_core", "1.0.0")
    first = _prepared(_plan(landscape, release_user, [v]))
    second = _plan(landscape, release_user, [v])
    with pytest.raises(moves.TargetHeld, match=f"Plan {first.key} \\(prepared"):
        plans.start_plan(actor=Actor.person(release_user), plan=second)
    second.refresh_from_db()
    assert second.state == S.SAVED
    # Another target is free.
    third = _plan(landscape, release_user, [v], target="Test")
    plans.start_plan(actor=Actor.person(release_user), plan=third)


def test_a_plan_for_an_application_a_holder_deploys_is_refused_whatever_the_limit(landscape, release_user, versions):
    v = versions("hr_core", "1.0.0")
    target = landscape["Production"]
    target.concurrent_plans = 5
    target.save(update_fields=["concurrent_plans"])
    _prepared(_plan(landscape, release_user, [v]))
    with pytest.raises(moves.TargetHeld, match="hr_core"):
        plans.start_plan(actor=Actor.person(release_user), plan=_plan(landscape, release_user, [v]))


def test_a_second_continue_gets_already_running(landscape, release_user, versions):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    with pytest.raises(plans.AlreadyRunning):
        plans.continue_plan(actor=Actor.person(release_user), plan=DeploymentPlan.objects.get(pk=plan.pk))
    assert Stage.objects.filter(plan=plan, kind="continue").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_continues_start_one_continue_only(landscape, release_user, versions):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def press() -> None:
        try:
            barrier.wait()
            plans.continue_plan(actor=Actor.person(release_user), plan=DeploymentPlan.objects.get(pk=plan.pk))
            outcomes.append("started")
        except plans.AlreadyRunning:
            outcomes.append("already running")
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already running"] * 3 + ["started"]
    assert Stage.objects.filter(plan=plan, kind="continue").count() == 1


def test_abort_is_refused_after_the_point_of_no_return(landscape, release_user, versions):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    plans.continue_plan(actor=Actor.person(release_user), plan=plan)
    moves.move_plan(
        plan,
        expected={S.CONTINUING},
        to=S.APPLYING,
        actor=Actor.system("continue"),
        fields={"point_of_no_return_at": plan.created_at},
    )
    with pytest.raises(plans.PlanRefused, match="point of no return"):
        plans.abort_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.APPLYING


def test_abort_of_a_prepared_plan_frees_the_target_at_once(landscape, release_user, versions):
    v = versions("hr_core", "1.0.0")
    plan = _prepared(_plan(landscape, release_user, [v]))
    plans.abort_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.ABORTED and plan.aborted_by == release_user
    plans.start_plan(actor=Actor.person(release_user), plan=_plan(landscape, release_user, [v]))
    plans.retry_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.SAVED


def test_abort_of_a_queued_stage_ends_aborted_not_aborting(landscape, release_user, versions):
    plan = _plan(landscape, release_user, [versions("hr_core", "1.0.0")])
    plans.start_plan(actor=Actor.person(release_user), plan=plan)
    plans.abort_plan(actor=Actor.person(release_user), plan=plan)
    plan.refresh_from_db()
    assert plan.state == S.ABORTED
    assert plan.stages.get().status == StageState.CANCELLED


def test_a_prepared_plan_expires_after_the_environment_limit(landscape, release_user, versions):
    from django.utils import timezone

    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    assert plans.expire_prepared_plans(now=timezone.now() + timezone.timedelta(hours=95)) == []
    expired = plans.expire_prepared_plans(now=timezone.now() + timezone.timedelta(hours=97))
    assert [p.pk for p in expired] == [plan.pk]
    plan.refresh_from_db()
    assert plan.state == S.ABORTED
    assert "Expired" in plan.transitions.last().reason
    assert moves.holder_of(plan.target_id) is None


def test_only_saved_plans_can_be_deleted(landscape, release_user, versions):
    plan = _plan(landscape, release_user, [versions("hr_core", "1.0.0")])
    plans.start_plan(actor=Actor.person(release_user), plan=plan)
    with pytest.raises(plans.PlanRefused, match="Only saved plans"):
        plans.delete_plan(actor=Actor.person(release_user), plan=plan)


# --- rights, through the pages ------------------------------------------------------------------


@pytest.mark.parametrize("action", ["plan_start", "plan_continue", "plan_abort", "plan_delete", "plan_prepare_again"])
def test_a_view_user_cannot_press_any_button_even_by_forged_post(
    client, landscape, release_user, ops_user, versions, action
):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    client.force_login(ops_user)
    page = client.get(reverse("deployments:plan", args=[plan.key])).content.decode()
    assert 'id="continue-deployment"' not in page and ">Abort<" not in page
    response = client.post(reverse(f"deployments:{action}", args=[plan.key]))
    assert response.status_code == 403
    plan.refresh_from_db()
    assert plan.state == S.PREPARED
    assert not plan.stages.exists()


def test_a_deploy_user_on_test_cannot_deploy_to_production(client, landscape, versions, release_user):
    tester = make_user("tester")
    env_services.set_access(
        actor=Actor.system("test"), user=tester, environment=landscape["Test"], level=AccessLevel.DEPLOY
    )
    env_services.set_access(
        actor=Actor.system("test"), user=tester, environment=landscape["Production"], level=AccessLevel.VIEW
    )
    v = versions("hr_core", "1.0.0")
    with pytest.raises(Exception, match="Deploy right on Production"):
        _plan(landscape, tester, [v])
    plan = _plan(landscape, release_user, [v])
    client.force_login(tester)
    assert client.post(reverse("deployments:plan_start", args=[plan.key])).status_code == 403
    create = client.post(
        reverse("deployments:plan_create") + f"?source={landscape['Test'].key}&target={landscape['Production'].key}",
        {"include": [str(v.application_id)], f"version_{v.application_id}": str(v.key)},
    )
    assert create.status_code == 403
    plan.refresh_from_db()
    assert plan.state == S.SAVED
    assert DeploymentPlan.objects.count() == 1


def test_release_manager_builds_saves_and_starts_a_plan_in_the_browserless_pages(
    client, landscape, release_user, versions
):
    v = versions("hr_core", "1.0.0")
    client.force_login(release_user)
    create_url = (
        reverse("deployments:plan_create")
        + f"?source={landscape['Development'].key}&target={landscape['Production'].key}"
    )
    form = client.get(create_url).content.decode()
    assert "Deploy from Development to Production" in form
    response = client.post(
        create_url, {"include": [str(v.application_id)], f"version_{v.application_id}": str(v.key), "notes": "n"}
    )
    plan = DeploymentPlan.objects.get()
    assert response["Location"] == reverse("deployments:plan", args=[plan.key])
    page = client.get(response["Location"]).content.decode()
    assert "Prepare Deployment" in page and "Deploy Now" not in page
    client.post(reverse("deployments:plan_start", args=[plan.key]))
    plan.refresh_from_db()
    assert plan.state == S.PREPARING
    again = client.post(reverse("deployments:plan_start", args=[plan.key]), follow=True)
    assert "already running" in again.content.decode()


def test_a_connection_that_reaches_another_database_than_when_it_was_saved_stops_prepare_and_continue(
    landscape, release_user, versions
):
    """The name in a saved connection can be made to point elsewhere afterwards (a DNS record, a
    database dropped and created again): Prepare and Continue ask the server who it is each time."""
    import psycopg2
    from psycopg2 import sql as pgsql
    from psycopg2.extensions import parse_dsn

    from deployments.plans import services as plans
    from deployments.stages.validity import check_still_valid
    from environments import databases
    from tests.conftest import server_params

    prod = landscape["Production"]
    assert databases.reaches_saved_database(prod) == ""
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    name = parse_dsn(prod.app_db_dsn())["dbname"]
    admin = psycopg2.connect(**server_params())
    admin.autocommit = True
    with admin.cursor() as cur:
        # Another database answers under the same name, owned by the same role.
        cur.execute(pgsql.SQL("drop database {} with (force)").format(pgsql.Identifier(name)))
        cur.execute(pgsql.SQL("create database {} owner {}").format(pgsql.Identifier(name), pgsql.Identifier(name)))
    admin.close()

    sentence = databases.reaches_saved_database(prod)
    assert "now reaches another database than the one it reached when it was saved" in sentence
    assert check_still_valid(plan) == [sentence]
    with pytest.raises(plans.PlanRefused, match="reaches another database"):
        plans.continue_plan(actor=Actor.person(release_user), plan=plan)
