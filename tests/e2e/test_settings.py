"""Settings per environment, for real: a plan puts them on every front-end beside the new release
and switches them with it; the application answers with them after Continue and not before; a plan
of the same version is the small plan that changes only settings. A secret never leaves the
console in a message, a log or a page: the agents fetch it over HTTP, signed for their front-end."""

from __future__ import annotations

import time

import pytest
import requests
from django.urls import reverse

from agent import signing
from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.catalog import settings as app_settings
from deployments.models import DeploymentPlan, Step, StepKind, StepState
from deployments.plans import services as plans
from deployments.state.machine import PlanState
from environments.models import AccessLevel
from examples.build import FORMATS, bundle_files, pack
from tests.api.conftest import create_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SECRET = "pk_live_Walrus-4410-Ochre"
APP = b"""
from hr_core.release_info import NAME, VERSION


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    if environ.get("PATH_INFO", "/").rstrip("/").endswith("health"):
        return [b"ok\\n"]
    settings = environ.get("lifetime.settings") or {}
    key = "set" if settings.get("payroll_api_key") else "unset"
    text = "%s %s greeting=%s key=%s\\n" % (NAME, VERSION, settings.get("greeting"), key)
    return [text.encode()]
"""
SETTINGS = b"""
[settings.greeting]
type = "string"
default = "Hello"

[settings.payroll_api_key]
type = "string"
secret = true
"""


def hr_with_settings(engine):
    files = bundle_files("hr_core", "1.0.0", modules=4)
    files["lifetime.toml"] += SETTINGS
    files["src/hr_core/app.py"] = APP
    return catalog.register_bundle(data=pack(files, FORMATS["hr_core"]), actor=Actor.person(engine.hosts.actor))


def test_a_setting_changed_is_what_the_application_answers_after_continue_and_not_before(engine, client):
    engine.start_worker()
    env = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    hr = hr_with_settings(engine)
    system = Actor.system("test")
    app_settings.set_value(
        actor=system, environment=env, application=hr.application, name="payroll_api_key", raw=SECRET
    )

    plan = engine.deploy("Development", "Test", [hr])
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0 greeting=Hello key=set"] * 2
    assert Step.objects.filter(stage__plan=plan, kind=StepKind.SETTINGS, status=StepState.DONE).exists()

    # Changed in the console: nothing changes on the front-ends until a plan applies it.
    app_settings.set_value(actor=system, environment=env, application=hr.application, name="greeting", raw="Bonjour")
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0 greeting=Hello key=set"] * 2

    # The small plan that changes only settings: the version that runs, again ("Apply with a plan").
    client.force_login(engine.release)
    settings_page = client.get(reverse("catalog:environment_settings", args=[env.key])).content.decode()
    assert 'id="settings-plan-hr_core"' in settings_page
    created = client.post(reverse("deployments:settings_plan", args=[env.key, hr.application.key]))
    again = DeploymentPlan.objects.get(key=created["Location"].rstrip("/").rsplit("/", 1)[1])
    assert [(op.application_id, op.version_id) for op in again.operations.all()] == [(hr.application_id, hr.pk)]
    plans.start_plan(actor=Actor.person(engine.release), plan=again)
    engine.wait(again, PlanState.FINISHED_SUCCESSFUL, PlanState.FINISHED_WITH_WARNINGS)
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0 greeting=Bonjour key=set"] * 2

    # Rolling that plan back puts the settings that ran before it back, with the release.
    plans.rollback_plan(actor=Actor.person(engine.release), plan=again)
    engine.wait(again, PlanState.ROLLED_BACK)
    assert engine.answers("Test", "/hr_core") == ["hr_core 1.0.0 greeting=Hello key=set"] * 2

    # The secret is on each front-end in the settings document only, never in a log or a page.
    for fe in engine.frontends["Test"]:
        holding = [
            p.relative_to(fe.root).as_posix()
            for p in fe.root.rglob("*")
            if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()
        ]
        assert len(holding) == 2 and all("/.settings/" in p for p in holding), holding
        assert SECRET not in fe.agent.log()
    assert SECRET not in engine.worker.log()
    for one in (plan, again):
        assert SECRET not in " ".join(one.log_lines.values_list("message", flat=True))
    token = create_token("pipeline", {env: AccessLevel.DEPLOY})
    api = f"{engine.console_url}/lifetimeapi/rest/v2/deployments/{again.key}"
    for url in (api, f"{api}/status", f"{engine.console_url}/lifetimeapi/rest/v2/deployments"):
        answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200 and SECRET not in answer.text, url
    client.force_login(engine.hosts.actor)
    pages = (
        reverse("deployments:plan", args=[again.key]),
        reverse("deployments:plan_changes", args=[again.key]),
        reverse("catalog:environment_settings", args=[env.key]),
        reverse("audit"),
    )
    for url in pages:
        assert SECRET not in client.get(url).content.decode(), url


def test_only_the_front_ends_of_the_target_may_fetch_settings_while_its_continue_runs(engine):
    env = engine.environment("Test", order=2, two_stage=False, app_db=engine.app_databases.create())
    hr = hr_with_settings(engine)
    app_settings.set_value(
        actor=Actor.system("test"), environment=env, application=hr.application, name="payroll_api_key", raw=SECRET
    )
    plan = engine.plan("Development", "Test", [hr])
    fe = engine.frontends["Test"][0].row
    path = f"/agents/settings/{fe.key}/{plan.key}/hr_core"
    token = {"Authorization": f"Bearer {engine.settings.AGENT_TOKEN}"}

    def get(headers):
        return requests.get(engine.console_url + path, headers=headers, timeout=10)

    signed = {**token, signing.REQUEST_HEADER: signing.sign_request(key=fe.agent_key(), path=path, now=time.time())}
    assert get({}).status_code == 403  # no agent token
    assert get(token).status_code == 403  # not signed with the front-end's key
    forged = signing.sign_request(key="another front-end's key" * 2, path=path, now=time.time())
    assert get({**token, signing.REQUEST_HEADER: forged}).status_code == 403
    refused = get(signed)
    assert refused.status_code == 404 and SECRET not in refused.text  # the plan is not running
