"""A release manager clicks through the two-stage flow in a real browser: Prepare Deployment,
Continue Later, Prepared, Continue Deployment, and sees the new version answer."""

from __future__ import annotations

import pytest

from deployments.models import DeploymentPlan
from tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_release_manager_prepares_continues_later_and_continues_in_the_browser(engine, page):
    engine.start_worker()
    engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    engine.deploy("Development", "Production", [engine.version("hr_core", "1.0.0")])
    new = engine.version("hr_core", "1.1.0")
    from django.utils import timezone

    from deployments.models import RunningVersion

    RunningVersion.objects.create(
        environment=engine.environments["Development"], application=new.application, version=new, since=timezone.now()
    )
    base = engine.console_url
    engine.release.set_password("lifetime-demo")
    engine.release.save()

    sign_in(page, base, "release")
    # Applications overview: Deploy... between Development and Production.
    page.click("a.button:has-text('Deploy...')")
    page.wait_for_selector("h1:has-text('Deploy from Development to Production')")
    assert page.is_checked(f"#include-{new.application_id}")
    page.click("button:has-text('Save')")
    page.wait_for_selector("#prepare-deployment")
    assert page.locator("#deploy-now").count() == 0
    page.click("#prepare-deployment")
    page.wait_for_selector("#continue-later", timeout=120_000)
    screenshot(page, "two-stage-prepared")
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]

    page.click("#continue-later")
    page.wait_for_url(f"{base}/plans/?status=prepared")
    page.click("a.tag.prepared")
    page.click("#continue-deployment")
    page.wait_for_selector("#plan-status:has-text('Finished')", timeout=120_000)
    screenshot(page, "two-stage-finished")
    assert "Finished successful" in page.inner_text("#plan-status") or "warnings" in page.inner_text("#plan-status")
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    plan = DeploymentPlan.objects.exclude(notes="end-to-end test").get()
    assert [t.actor_name for t in plan.transitions.all()][:1] == ["release"]
