"""Single sign-on through OpenID Connect against a real provider (the npm package oidc-provider,
run with the machine's Node.js and installed from the lock file with ``npm ci``), driven in
Chromium: groups become rights per environment, local accounts stay for break-glass, and a
re-authentication makes the provider ask for the credentials again."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.urls import reverse

from core.models import AuditEvent, SingleSignOnIdentity
from core.sessions import SessionStore
from core.signin import AUTHENTICATED_AT
from deployments.models import PlanState
from environments.access import INFRA_ADMINS_GROUP
from environments.models import AccessLevel, EnvironmentAccess
from tests.conftest import screenshot, sign_in
from tests.deployments.test_plans import _plan, _prepared
from tests.processes import Process, free_port

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
ACCOUNTS = {
    "alice": {"groups": ["lifetime-release"]},
    "olga": {"groups": ["lifetime-ops", "unrelated"]},
    "admin": {"groups": ["lifetime-admins"]},
}
GROUP_ROLES = "lifetime-admins=infra-admin; lifetime-release=*:deploy; lifetime-ops=*:view,Production:view"


def npm_ci() -> None:
    """Install the provider from its lock file, once per lock file."""
    lock = PROVIDER_DIR / "package-lock.json"
    stamp = PROVIDER_DIR / "node_modules" / ".lock-installed"
    if stamp.exists() and stamp.read_text() == lock.read_text():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("Node.js and npm are needed for the single sign-on tests: scripts/bootstrap.sh installs them")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, check=True, capture_output=True)
    stamp.write_text(lock.read_text())


@pytest.fixture(scope="session")
def provider_port() -> int:
    return free_port()


@pytest.fixture
def provider(live_server, provider_port, settings):
    npm_ci()
    issuer = f"http://127.0.0.1:{provider_port}"
    callback = live_server.url + reverse("oidc_authentication_callback")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "OIDC_TEST_ACCOUNTS": json.dumps(ACCOUNTS)}
    node = shutil.which("node") or "node"
    process = Process("oidc-provider", [node, str(PROVIDER_DIR / "provider.mjs"), str(provider_port), callback], env)
    process.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if not process.running or time.monotonic() > deadline:
                pytest.fail(f"the OpenID Connect provider did not start:\n{process.log()[-3000:]}")
            time.sleep(0.1)
    settings.OIDC_RP_CLIENT_ID = "lifetime-console"
    settings.OIDC_RP_CLIENT_SECRET = "lifetime-test-secret"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{issuer}/auth"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{issuer}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{issuer}/me"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{issuer}/jwks"
    settings.OIDC_GROUP_ROLES = GROUP_ROLES
    settings.SSO_ENABLED = True
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "core.signin.SingleSignOnBackend"]
    yield issuer
    process.stop()


def provider_login(page, login: str) -> None:
    """The provider's own pages: its login form (any password), then its consent page."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "whatever-the-provider-checks")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("button[type=submit]:has-text('Continue')").count():
        page.click("button[type=submit]:has-text('Continue')")


def sso_sign_in(page, base_url: str, login: str) -> None:
    page.goto(f"{base_url}/login/")
    page.click("text=Sign in with single sign-on")
    provider_login(page, login)
    page.wait_for_url(f"{base_url}/")


def levels_of(user) -> dict[str, int]:
    return dict(EnvironmentAccess.objects.filter(user=user).values_list("environment__name", "level"))


def test_single_sign_on_maps_the_provider_groups_to_rights_per_environment(live_server, landscape, provider, page):
    from django.contrib.auth.models import User

    sso_sign_in(page, live_server.url, "alice")
    assert "alice" in page.inner_text(".who")
    screenshot(page, "single-sign-on-signed-in")
    alice = User.objects.get(username="alice")
    assert SingleSignOnIdentity.objects.get(user=alice).subject == "alice"
    assert not alice.has_usable_password()
    assert levels_of(alice) == {name: AccessLevel.DEPLOY for name in ("Development", "Test", "Production")}
    event = AuditEvent.objects.get(action="signin.succeeded", actor=alice)
    assert event.message.startswith("Signed in with single sign-on from 127.0.0.1")
    assert (
        AuditEvent.objects.filter(action="access.changed", actor_name="single sign-on", object_label="alice").count()
        == 3
    )

    page.click("text=Sign out")
    page.context.clear_cookies()
    sso_sign_in(page, live_server.url, "olga")
    olga = User.objects.get(username="olga")
    assert levels_of(olga) == {name: AccessLevel.VIEW for name in ("Development", "Test", "Production")}
    assert page.locator("text=Deploy...").count() == 0


def test_a_local_account_of_the_same_name_stays_the_break_glass_account(live_server, landscape, provider, page):
    from django.contrib.auth.models import User

    local_admin = User.objects.get(username="admin")
    sso_sign_in(page, live_server.url, "admin")
    assert "admin.sso" in page.inner_text(".who") and "infra admin" in page.inner_text(".who")
    sso_admin = User.objects.get(username="admin.sso")
    assert sso_admin.groups.filter(name=INFRA_ADMINS_GROUP).exists()
    assert not hasattr(local_admin, "sso_identity")
    page.click("text=Sign out")
    page.context.clear_cookies()
    # The provider is not needed for the local account: the password form still works.
    sign_in(page, live_server.url, "admin")
    assert page.inner_text(".who").startswith("admin ·")


def test_an_unknown_provider_login_signs_nobody_in(live_server, landscape, provider, page):
    page.goto(f"{live_server.url}/login/")
    page.click("text=Sign in with single sign-on")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", "mallory")
    page.fill("input[name=password]", "x")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "_auth_user_id" not in str(page.context.cookies())
    assert not SingleSignOnIdentity.objects.exists()


def test_continue_on_production_makes_the_provider_ask_again(live_server, landscape, provider, page, versions):
    from django.contrib.auth.models import User

    sso_sign_in(page, live_server.url, "alice")
    alice = User.objects.get(username="alice")
    plan = _prepared(_plan(landscape, alice, [versions("hr_core", "1.0.0")]))
    key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    session = SessionStore(session_key=key)
    session[AUTHENTICATED_AT] = time.time() - 3600
    session.save()

    page.goto(f"{live_server.url}/plans/{plan.key}/")
    page.click("#continue-deployment")
    page.wait_for_url(f"{live_server.url}/reauthenticate/**")
    assert page.locator("input[name=password]").count() == 0  # no local password to give
    page.click("text=Confirm with single sign-on")
    # prompt=login: the provider shows its login form again although its session is alive.
    provider_login(page, "alice")
    page.wait_for_url(f"{live_server.url}/plans/{plan.key}/")
    plan.refresh_from_db()
    assert plan.is_prepared
    page.click("#continue-deployment")
    page.wait_for_url(f"{live_server.url}/plans/{plan.key}/")
    plan.refresh_from_db()
    assert plan.state == PlanState.CONTINUING
    assert AuditEvent.objects.filter(action="plan.continued", actor=alice).exists()
