"""Every page carries an enforced Content-Security-Policy with no inline script or style, and the
browser tests fail on any violation Chromium reports (tests/conftest.py's ``page`` fixture)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from deployments.models import ApplicationVersion
from tests.conftest import CHROMIUM_ARGS, is_csp_violation, sign_in
from tests.deployments.test_plans import _plan, _prepared


def pages(landscape, plan, version) -> list[str]:
    prod = landscape["Production"]
    return [
        reverse("home"),
        reverse("deployments:plans"),
        reverse("deployments:plan", args=[plan.key]),
        reverse("deployments:plan_create") + f"?source={landscape['Test'].key}&target={prod.key}",
        reverse("deployments:board"),
        reverse("environments:list"),
        reverse("environments:detail", args=[prod.key]),
        reverse("environments:edit", args=[prod.key]),
        reverse("notifications:rules", args=[prod.key]),
        reverse("mobile:apps", args=[prod.key]),
        reverse("catalog:list"),
        reverse("catalog:upload"),
        reverse("catalog:application", args=[version.application.key]),
        reverse("catalog:version", args=[version.key]),
        reverse("audit"),
        reverse("service_accounts:list"),
        reverse("service_accounts:create"),
        reverse("reauthenticate"),
        reverse("deployments:plan_create") + "?source=abc",  # an error page
    ]


@pytest.mark.django_db
def test_every_page_answers_with_an_enforced_policy_without_inline_script_or_style(
    client, landscape, admin_user, release_user, versions
):
    version = versions("hr_core", "1.0.0")
    plan = _prepared(_plan(landscape, release_user, [version]))
    client.force_login(admin_user)
    for url in pages(landscape, plan, version):
        response = client.get(url)
        assert response.status_code in (200, 400), (url, response.status_code)
        policy = response["Content-Security-Policy"]
        assert "Content-Security-Policy-Report-Only" not in response.headers
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", url
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        html = response.content.decode()
        assert not re.search(r"\sstyle=|\son[a-z]+=|<script>|<style", html), url
    client.logout()
    assert "script-src 'self'" in client.get(reverse("login"))["Content-Security-Policy"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_browser_tests_see_a_violation_when_one_happens(live_server, landscape, chromium):
    """The fixture's detector, checked against a real violation: an inline style Chromium refuses."""
    context = chromium.new_context()
    page = context.new_page()
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text))
    sign_in(page, live_server.url, "admin")
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    page.evaluate("() => new Promise(r => setTimeout(r, 200))")
    context.close()
    assert any(is_csp_violation(text) for text in seen), seen
    assert CHROMIUM_ARGS  # the same Chromium as every browser test


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_console_pages_work_in_chromium_under_the_policy(live_server, landscape, release_user, versions, page):
    version = versions("hr_core", "1.0.0")
    plan = _prepared(_plan(landscape, release_user, [version]))
    sign_in(page, live_server.url, "admin")
    for url in pages(landscape, plan, version):
        page.goto(live_server.url + url)
    # htmx (a static script) runs: the board's live part is polled and swapped in.
    page.goto(f"{live_server.url}{reverse('deployments:board')}")
    page.wait_for_load_state("networkidle")
    assert ApplicationVersion.objects.count() == 1
