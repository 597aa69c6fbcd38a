from __future__ import annotations

import pytest

from environments.models import Environment
from tests.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_infra_admin_ticks_two_stages_saves_reloads_and_sees_it_kept(live_server, landscape, page):
    test_env = landscape["Test"]
    assert not test_env.two_stage_deployments
    sign_in(page, live_server.url, "admin")
    page.click("text=Infrastructure")
    page.click(f"a[href='/environments/{test_env.key}/edit/']")
    box = page.get_by_label("Execute deployments in two stages")
    assert not box.is_checked()
    box.check()
    screenshot(page, "environment-edit-two-stages")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"{live_server.url}/environments/{test_env.key}/")
    assert "saved" in page.inner_text(".messages")
    page.reload()
    assert "Yes" in page.inner_text("#two-stage")
    page.goto(f"{live_server.url}/environments/{test_env.key}/edit/")
    assert page.get_by_label("Execute deployments in two stages").is_checked()
    assert Environment.objects.get(pk=test_env.pk).two_stage_deployments is True
    screenshot(page, "environment-detail")


def test_test_connection_button_answers_in_place(live_server, landscape, page):
    prod = landscape["Production"]
    sign_in(page, live_server.url, "admin")
    page.goto(f"{live_server.url}/environments/{prod.key}/edit/")
    page.click("button:has-text('Test connection')")
    page.wait_for_selector("#connection-check .ok")
    assert "Connected to" in page.inner_text("#connection-check")


def test_a_new_frontends_agent_key_is_shown_once_and_its_refusals_on_the_environment_page(
    live_server, landscape, page, tmp_path
):
    from environments.models import FrontEnd

    prod = landscape["Production"]
    sign_in(page, live_server.url, "admin")
    page.goto(f"{live_server.url}/environments/{prod.key}/frontends/new/")
    page.fill("input[name=name]", "fe3")
    page.fill("input[name=releases_root]", str(tmp_path / "fe3"))
    page.click("button:has-text('Save')")
    shown = page.inner_text("#agent-key").strip()
    screenshot(page, "frontend-agent-key")
    fe = FrontEnd.objects.get(environment=prod, name="fe3")
    assert shown == fe.agent_key() and shown not in fe.agent_key_encrypted
    FrontEnd.objects.filter(pk=fe.pk).update(
        last_report={
            "ok": True,
            "refused_total": 3,
            "refused": [
                {
                    "at": 0,
                    "task": "agent.switch",
                    "task_id": "x",
                    "queue": fe.queue,
                    "reason": "the message is not signed by the console",
                }
            ],
        }
    )
    page.goto(f"{live_server.url}/environments/{prod.key}/")
    assert shown not in page.content()
    page.click("text=refused 3 messages")
    assert "agent.switch: the message is not signed by the console" in page.inner_text("details.refused")
    screenshot(page, "environment-refused-messages")
