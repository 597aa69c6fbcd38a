"""The page of what a plan will change, in a browser, before Prepare and after it: a web
application with SQL and settings, and a mobile application whose package will be built."""

from __future__ import annotations

import pytest

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.catalog import settings as app_settings
from deployments.mobile.config import save_mobile_config
from deployments.plans import services as plans
from deployments.state.machine import PlanState
from examples.build import FORMATS, bundle_files, pack
from tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "pk_live_Heron-5521-Amber"
SETTINGS = b"""
[settings.greeting]
type = "string"
default = "Hello"

[settings.page_size]
type = "integer"
default = 20

[settings.payroll_api_key]
type = "string"
secret = true
"""


def test_what_will_change_before_and_after_prepare(engine, page):
    engine.start_worker()
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    files = bundle_files("hr_core", "1.1.0", modules=4)
    files["lifetime.toml"] += SETTINGS
    actor = Actor.person(engine.hosts.actor)
    hr_110 = catalog.register_bundle(data=pack(files, FORMATS["hr_core"]), actor=actor)
    mobile = engine.version("field_inspector", "1.0.0")
    save_mobile_config(
        actor=actor,
        environment=prod,
        application=mobile.application,
        data={
            "app_identifier": "com.example.inspector",
            "server_url": "https://prod.example.com",
            "app_version": "1.0",
        },
    )
    system = Actor.system("test")
    app_settings.set_value(actor=system, environment=prod, application=hr_110.application, name="page_size", raw="50")
    app_settings.set_value(
        actor=system, environment=prod, application=hr_110.application, name="payroll_api_key", raw=SECRET
    )
    plan = engine.plan("Development", "Production", [hr_110, mobile])
    engine.release.set_password("lifetime-demo")
    engine.release.save()

    sign_in(page, engine.console_url, "release")
    page.goto(f"{engine.console_url}/plans/{plan.key}/")
    page.click("#what-will-change")
    page.wait_for_selector("h1:has-text('What will change in Production')")
    hr = page.inner_text("#change-hr_core")
    assert "1.0.0 → 1.1.0" in hr
    assert "Payslips; phone numbers" in hr  # the change log of 1.1.0
    assert "Generated at Prepare" in hr and "sql/002_full_name.sql" in hr
    assert "page_size" in hr and "50" in hr and "set (hidden)" in hr and "new" in hr
    inspector = page.inner_text("#change-field_inspector")
    assert "not deployed → 1.0.0" in inspector
    assert "A new app package will be built for Production" in inspector
    assert "fe" in page.inner_text("#changes-frontends")
    assert SECRET not in page.content()
    screenshot(page, "what-will-change-before-prepare")

    plans.start_plan(actor=Actor.person(engine.release), plan=plan)
    engine.wait(plan, PlanState.PREPARED)
    page.reload()
    hr = page.inner_text("#change-hr_core")
    assert "as Prepare found it" in page.inner_text("main")
    assert "in the window, about" in hr and "ALTER TABLE" in hr.upper()
    assert SECRET not in page.content()
    screenshot(page, "what-will-change-after-prepare")
