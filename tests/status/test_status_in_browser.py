"""Watching a two-stage deployment from the plan status page in a real browser: the page is opened
once and never reloaded; htmx polls the live fragment, which brings progress, log lines and the
buttons as the plan moves.

The stages are driven from the test through the services (PlanDriver), not by the stage worker:
the engine and its end-to-end fixtures are not wired yet. The pages, the polling and the browser
are real."""

from __future__ import annotations

import pytest

from deployments.models import StageKind
from tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_watch_prepare_and_continue_without_reloading(live_server, page, driver):
    d = driver(pace=0.35)
    plan = d.plan
    answers: list[int] = []
    page.on(
        "response",
        lambda response: answers.append(response.status) if "/live/" in response.url else None,
    )
    sign_in(page, live_server.url, "release")
    page.goto(f"{live_server.url}/plans/{plan.key}/")
    assert page.is_visible("#prepare-deployment")

    # Prepare, half way: compile done for one application of two, the second compiling.
    d.start()
    page.reload()  # the saved page does not poll; once started, the page follows on its own
    stage = d.stage(StageKind.PREPARE)
    d.validate(stage)
    hr_core, leave_portal = d.versions
    d.compile(stage, hr_core)
    d.generate_sql(stage, hr_core)
    d.compile(stage, leave_portal, finish=False)
    page.wait_for_selector("text=1 of 2 applications compiled")
    page.wait_for_selector("#log li:has-text('Compiling leave_portal')")
    assert page.inner_text("#plan-status") == "Running"
    assert page.is_visible("#abort")
    page.wait_for_timeout(2500)  # a poll or two with nothing new: 304s
    screenshot(page, "status-mid-prepare")

    # The rest of Prepare: the Continue buttons arrive without a reload.
    from deployments.stages.log import end_step

    d.log("leave_portal 1.0.0 compiled.")
    end_step(d.plan.stages.get(kind="prepare").steps.get(kind="compile", subject="leave_portal"))
    d.generate_sql(stage, leave_portal)
    d.upload(stage)
    d.prepared()
    d.finish_stage(stage)
    page.wait_for_selector("#continue-deployment", timeout=20000)
    assert page.inner_text("#plan-status") == "Prepared"
    assert page.is_visible("#continue-later")
    assert page.is_visible("#continue-estimate")
    screenshot(page, "status-prepared")

    # Continue, in the window: SQL past the point of no return, then every front-end.
    stage = d.continue_()
    d.execute_sql(stage)
    d.switch(stage)
    d.finish()
    d.finish_stage(stage)
    page.wait_for_selector("#plan-status:has-text('Finished successful')", timeout=20000)
    page.wait_for_selector("text=2 of 2 front-ends switched")
    assert not page.is_visible("#abort")
    assert page.locator("#stage-continue svg.timeline rect[fill]").count() >= 4
    assert page.locator("#stage-prepare svg.timeline rect[fill]").count() >= 7
    screenshot(page, "status-after-continue")

    # Polling stopped with the final fragment (286), and unchanged polls were answered 304.
    assert 286 in answers
    assert 304 in answers
    polls = len(answers)
    page.wait_for_timeout(4500)
    assert len(answers) == polls
