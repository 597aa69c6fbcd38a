"""Sessions end after idle and absolute limits; actions that change production need a recent
authentication, and a forged POST without one changes nothing."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from core.models import AuditEvent
from core.sessions import SessionStore
from core.signin import AUTHENTICATED_AT, LAST_ACTIVITY, SIGNED_IN_AT
from deployments.models import PlanState
from tests.conftest import PASSWORD, screenshot, sign_in
from tests.deployments.test_plans import _plan, _prepared

S = PlanState


def age(client, key: str, seconds: float) -> None:
    session = client.session
    session[key] = time.time() - seconds
    session.save()


@pytest.fixture
def signed_in(client, release_user):
    assert client.login(username="release", password=PASSWORD)
    return client


def test_an_idle_session_is_asked_to_sign_in_again(signed_in, release_user):
    assert signed_in.get(reverse("home")).status_code == 200
    age(signed_in, LAST_ACTIVITY, 31 * 60)
    response = signed_in.get(reverse("deployments:plans"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login") + "?next=%2Fplans%2F"
    page = signed_in.get(response["Location"]).content.decode()
    assert "You were signed out after 30 minutes without activity: please sign in again." in page
    assert signed_in.get(reverse("home")).status_code == 302  # really signed out
    event = AuditEvent.objects.filter(action="signin.signed_out", actor=release_user).get()
    assert event.message == "You were signed out after 30 minutes without activity: please sign in again."


def test_a_session_ends_twelve_hours_after_signing_in_even_when_active(signed_in):
    age(signed_in, SIGNED_IN_AT, 12 * 3600 + 1)
    response = signed_in.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_status_polls_neither_keep_a_session_alive_nor_sign_in_again(signed_in):
    age(signed_in, LAST_ACTIVITY, 10 * 60)
    before = signed_in.session[LAST_ACTIVITY]
    signed_in.get(reverse("deployments:board_live"), HTTP_HX_REQUEST="true")
    assert signed_in.session[LAST_ACTIVITY] == before
    age(signed_in, LAST_ACTIVITY, 31 * 60)
    poll = signed_in.get(reverse("deployments:board_live"), HTTP_HX_REQUEST="true")
    assert poll.status_code == 204 and poll["HX-Redirect"] == reverse("login")


def test_continue_on_production_asks_for_the_password_first(signed_in, landscape, release_user, versions):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    age(signed_in, AUTHENTICATED_AT, 6 * 60)
    response = signed_in.post(reverse("deployments:plan_continue", args=[plan.key]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("reauthenticate"))
    plan.refresh_from_db()
    assert plan.is_prepared
    assert not AuditEvent.objects.filter(action="plan.continued").exists()

    page = signed_in.get(response["Location"]).content.decode()
    assert "Continue Deployment on Production changes production." in page
    wrong = signed_in.post(
        reverse("reauthenticate"), {"password": "not-it", "next": reverse("deployments:plan", args=[plan.key])}
    )
    assert "That is not your password." in wrong.content.decode()
    assert AuditEvent.objects.filter(action="signin.failed", object_label="release").exists()
    confirmed = signed_in.post(
        reverse("reauthenticate"), {"password": PASSWORD, "next": reverse("deployments:plan", args=[plan.key])}
    )
    assert confirmed["Location"] == reverse("deployments:plan", args=[plan.key])
    assert AuditEvent.objects.filter(action="signin.reauthenticated", actor=release_user).exists()

    signed_in.post(reverse("deployments:plan_continue", args=[plan.key]))
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING
    assert AuditEvent.objects.filter(action="plan.continued", actor=release_user).count() == 1


@pytest.mark.parametrize("action", ["plan_continue", "plan_abort", "plan_schedule_continue"])
def test_a_forged_post_on_production_without_recent_authentication_changes_nothing(
    signed_in, landscape, release_user, versions, action
):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    age(signed_in, AUTHENTICATED_AT, 3600)
    audit_before = AuditEvent.objects.count()
    response = signed_in.post(reverse(f"deployments:{action}", args=[plan.key]), {"reason": "forged"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("reauthenticate"))
    plan.refresh_from_db()
    assert plan.state == S.PREPARED and plan.continue_scheduled_at is None
    assert AuditEvent.objects.count() == audit_before


def test_deploy_now_on_production_asks_but_prepare_and_other_environments_do_not(
    signed_in, landscape, release_user, versions
):
    version = versions("hr_core", "1.0.0")
    age(signed_in, AUTHENTICATED_AT, 3600)
    # Prepare changes nothing running: no password.
    prepare = _plan(landscape, release_user, [version])
    signed_in.post(reverse("deployments:plan_start", args=[prepare.key]))
    prepare.refresh_from_db()
    assert prepare.state == S.PREPARING
    # Deploy Now on Test: no password.
    to_test = _plan(landscape, release_user, [version], target="Test")
    signed_in.post(reverse("deployments:plan_start", args=[to_test.key]))
    to_test.refresh_from_db()
    assert to_test.state == S.PREPARING


def test_a_user_without_the_right_gets_403_not_a_password_prompt(client, landscape, ops_user, release_user, versions):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    client.force_login(ops_user)
    assert client.post(reverse("deployments:plan_continue", args=[plan.key])).status_code == 403


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_continue_on_production_in_the_browser_asks_for_the_password_then_continues(
    live_server, landscape, release_user, versions, page
):
    plan = _prepared(_plan(landscape, release_user, [versions("hr_core", "1.0.0")]))
    sign_in(page, live_server.url, "release")
    key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    session = SessionStore(session_key=key)
    session[AUTHENTICATED_AT] = time.time() - 3600
    session.save()
    page.goto(f"{live_server.url}/plans/{plan.key}/")
    page.click("#continue-deployment")
    page.wait_for_url(f"{live_server.url}/reauthenticate/**")
    assert "Confirm it is you" in page.inner_text("h1")
    screenshot(page, "reauthenticate-before-continue")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Confirm')")
    page.wait_for_url(f"{live_server.url}/plans/{plan.key}/")
    plan.refresh_from_db()
    assert plan.state == S.PREPARED  # nothing happened before the second click
    page.click("#continue-deployment")
    page.wait_for_url(f"{live_server.url}/plans/{plan.key}/")
    plan.refresh_from_db()
    assert plan.state == S.CONTINUING


def _same_session(client, other):
    other.cookies["sessionid"] = client.cookies["sessionid"].value
    return other


def test_a_signed_out_session_is_refused_everywhere_at_once(signed_in):
    # A second browser holding the same cookie (a stolen one, or the same person's other tab):
    # the sessions are read from a cache every web process shares, so the sign-out is seen there.
    other = _same_session(signed_in, Client())
    assert other.get(reverse("home")).status_code == 200
    signed_in.post(reverse("logout"))
    response = other.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_sessions_work_from_postgresql_alone_when_redis_is_away(release_user, settings):
    from tests.processes import free_port

    settings.CACHES = {
        **settings.CACHES,
        "sessions": {**settings.CACHES["sessions"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"},
    }
    browser = Client()
    assert browser.login(username="release", password=PASSWORD)
    assert browser.get(reverse("home")).status_code == 200
    assert browser.get(reverse("deployments:board_live"), HTTP_HX_REQUEST="true").status_code == 200
    other = _same_session(browser, Client())
    browser.post(reverse("logout"))
    response = other.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
