"""The plan status page and its live fragment, for a plan in each status."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments.models import PlanState, StageKind
from tests.conftest import PASSWORD
from tests.status.drive import fill_log

S = PlanState
pytestmark = pytest.mark.django_db


def signed_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(client, plan) -> str:
    response = client.get(reverse("deployments:plan", args=[plan.key]))
    assert response.status_code == 200
    return response.content.decode()


def live(client, plan, *, after: int = 0, state: str = "", etag: str = ""):
    headers = {"HTTP_IF_NONE_MATCH": etag} if etag else {}
    return client.get(reverse("deployments:plan_live", args=[plan.key]), {"after": after, "state": state}, **headers)


def poller(html: str) -> dict[str, str]:
    """The attributes of the polling element as the page (or fragment) renders it."""
    match = re.search(r'<div id="plan-live"([^>]*)>', html)
    assert match, "no poller"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))
    headers = re.search(r"hx-headers='([^']*)'", match.group(1))
    if headers:
        attrs["etag"] = headers.group(1).split('"If-None-Match": "')[1].rsplit('"', 1)[0].replace("\\u0022", '"')
    return attrs


def test_saved_plan_shows_its_form_and_does_not_poll(client, release_user, production_plan):
    plan = production_plan()
    html = page(signed_in(client, release_user), plan)
    assert 'id="prepare-deployment"' in html
    assert "hx-get" not in poller(html) if 'id="plan-live"' in html else True
    assert "Saved, not started" in html


def test_running_plan_shows_the_current_step_with_progress_and_the_log(client, ops_user, driver):
    d = driver()
    d.start()
    stage = d.stage(StageKind.PREPARE)
    d.validate(stage)
    hr_core, leave_portal = d.versions
    d.compile(stage, hr_core)
    d.compile(stage, leave_portal, finish=False)
    html = page(signed_in(client, ops_user), d.plan)
    assert "1 · Prepare" in html and "2 · Continue" in html
    assert "1 of 2 applications compiled" in html
    assert "Compiling leave_portal 1.0.0." in html
    assert re.search(r"<b>1 · Prepare</b> › Compile", html)
    assert "not reached: Abort possible" in html
    # ops may watch, not act
    assert 'id="abort"' not in html
    assert poller(html)["hx-trigger"] == "every 2s"
    assert "<svg" in html and "Compile · hr_core" in html


def test_deploy_user_sees_abort_while_running(client, release_user, driver):
    d = driver()
    d.start()
    d.stage(StageKind.PREPARE)
    assert 'id="abort"' in page(signed_in(client, release_user), d.plan)


def test_upload_shows_progress_per_frontend(client, ops_user, driver):
    d = driver()
    d.start()
    stage = d.stage(StageKind.PREPARE)
    d.validate(stage)
    for version in d.versions:
        d.compile(stage, version)
        d.generate_sql(stage, version)
    d.upload(stage, upto=1)
    html = page(signed_in(client, ops_user), d.plan)
    assert "2 of 2 applications compiled" in html
    assert "0 of 2 front-ends uploaded" in html
    assert html.count("1 of 2</td>") == 2  # fe1 and fe2 each have 1 of 2 binaries


def test_prepared_plan_offers_continue_with_the_estimate_and_the_generated_sql(client, release_user, driver):
    d = driver()
    d.prepare(warnings=["Column hr.department.budget is no longer in the data model: it is kept (no DROP)."])
    html = page(signed_in(client, release_user), d.plan)
    for button in ('id="continue-deployment"', 'id="continue-later"'):
        assert button in html
    assert 'id="abort"' not in html  # the prepared banner's Abort has no id, as before
    assert "Continue should take about" in html
    # 2 applications rehearsed in 1.25 s each; 2 front-ends at the default 5 s each
    assert "SQL 2.5 s typical" in html  # prepared without an estimate: the rehearsal timings
    assert "no Continue ran there yet" in html
    assert "Next window" in html or "is <b>open</b>" in html
    assert "Generated SQL" in html
    assert "CREATE TABLE hr.employee" in html  # formatted by sqlparse
    assert "lock_heavy" in html and "no longer in the data model" in html
    assert poller(html)["hx-trigger"] == "every 10s"  # a prepared plan waits for a person: slower polling
    assert "4 of 4 front-ends" not in html
    assert "runs when someone clicks Continue Deployment" in html


def test_continue_estimate_uses_past_switch_times_on_the_target(client, release_user, driver, production_plan):
    first = driver()
    first.prepare()
    first.continue_all()
    second = driver(production_plan("next"))
    second.prepare()
    html = page(signed_in(client, release_user), second.plan)
    assert "from the last 1 Continue on Production" in html


def test_past_the_point_of_no_return_abort_is_gone(client, release_user, driver):
    d = driver()
    d.prepare()
    stage = d.continue_()
    d.execute_sql(stage, upto=3)
    html = page(signed_in(client, release_user), d.plan)
    assert 'id="abort"' not in html
    assert "passed " in html and "Abort is no longer possible" in html
    assert "3 of 8 statements executed" in html
    assert "point of no return" in html  # on the timeline


def test_finished_plan_answers_286_with_its_final_fragment(client, ops_user, driver):
    d = driver()
    d.prepare()
    d.continue_all()
    signed_in(client, ops_user)
    html = page(client, d.plan)
    assert "hx-get" not in poller(html)
    response = live(client, d.plan, after=0, state="applying")
    assert response.status_code == 286
    body = response.content.decode()
    assert 'id="plan-status"' in body and "Finished successful" in body
    assert "2 of 2 front-ends switched" in body
    assert "hx-get" not in poller(body)
    assert "Deployment finished: deployed." in body


def test_live_fragment_answers_304_until_something_changes(client, ops_user, driver):
    d = driver()
    d.start()
    stage = d.stage(StageKind.PREPARE)
    d.validate(stage)
    signed_in(client, ops_user)
    attrs = poller(page(client, d.plan))
    after = int(re.search(r"after=(\d+)", attrs["hx-get"]).group(1))
    state = re.search(r"state=([^&]+)", attrs["hx-get"]).group(1)
    unchanged = live(client, d.plan, after=after, state=state, etag=attrs["etag"])
    assert unchanged.status_code == 304
    assert unchanged["ETag"] == attrs["etag"]
    assert unchanged.content == b""
    # a new log line: 200 with only that line, and an ETag that the next poll will match
    d.log("Compiling hr_core 1.0.0.")
    changed = live(client, d.plan, after=after, state=state, etag=attrs["etag"])
    assert changed.status_code == 200
    body = changed.content.decode()
    assert body.count("<li ") == 1 and "Compiling hr_core" in body
    assert 'id="plan-actions"' not in body  # status unchanged: buttons are not re-sent
    following = poller(body)
    again = live(
        client,
        d.plan,
        after=int(re.search(r"after=(\d+)", following["hx-get"]).group(1)),
        state=state,
        etag=following["etag"],
    )
    assert again.status_code == 304
    # progress of a step without a log line also changes the fragment
    step = d.compile(stage, d.versions[0], finish=False)
    from deployments.stages.log import PlanStepLog

    PlanStepLog(d.plan, step).progress(1, 3)
    assert live(client, d.plan, after=after, state=state, etag=attrs["etag"]).status_code == 200


def test_status_change_resends_buttons_sql_and_history(client, release_user, driver):
    d = driver()
    d.start()
    stage = d.stage(StageKind.PREPARE)
    signed_in(client, release_user)
    state = d.plan.state
    for version in d.versions:
        d.compile(stage, version)
        d.generate_sql(stage, version)
    d.upload(stage)
    d.prepared()
    body = live(client, d.plan, after=0, state=state).content.decode()
    assert 'id="continue-deployment"' in body
    assert 'id="plan-settled"' in body and "CREATE TABLE" in body
    assert "prepared</b>" in body  # the history's last move
    assert state != d.plan.state


def test_log_page_shows_a_window_and_the_rest_on_demand(client, ops_user, driver):
    d = driver()
    d.start()
    fill_log(d.plan, 450)
    signed_in(client, ops_user)
    html = page(client, d.plan)
    assert html.count('<li class="info"') == 200
    assert "250 earlier lines not shown here" in html
    earlier = client.get(reverse("deployments:plan_log_window", args=[d.plan.key]), {"before": 251}).content.decode()
    assert earlier.count("<li ") == 250
    whole = b"".join(client.get(reverse("deployments:plan_log", args=[d.plan.key])).streaming_content).decode()
    assert len(whole.splitlines()) == 450


def test_sql_download_is_formatted_with_its_warnings_and_flags(client, ops_user, driver):
    d = driver()
    d.prepare(warnings=["hr.department.budget is not in the data model any more: kept."])
    hr_core = d.versions[0]
    response = signed_in(client, ops_user).get(
        reverse("deployments:plan_sql", args=[d.plan.key, hr_core.application.key])
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="hr_core-1.0.0-Production.sql"'
    text = response.content.decode()
    assert "-- WARNING: hr.department.budget" in text
    assert "[lock_heavy]" in text and "from sql/002_cost_centre.sql, line 3 [touches_rows]" in text
    assert "CREATE TABLE hr.employee (\n  id BIGSERIAL PRIMARY KEY,\n  name varchar(200) NOT NULL," in text


def test_someone_without_access_to_the_target_gets_403(client, landscape, driver):
    from tests.conftest import make_user

    d = driver()
    d.start()
    outsider = make_user("outsider")
    signed_in(client, outsider)
    assert client.get(reverse("deployments:plan", args=[d.plan.key])).status_code == 403
    assert live(client, d.plan).status_code == 403


@pytest.mark.parametrize("lines", [10, 2500])
def test_status_page_and_fragment_cost_the_same_queries_whatever_the_log(client, ops_user, driver, lines):
    d = driver()
    d.prepare()
    stage = d.continue_()
    d.execute_sql(stage, upto=2)
    fill_log(d.plan, lines)
    signed_in(client, ops_user)
    page(client, d.plan)  # warm the session
    with CaptureQueriesContext(connection) as full:
        page(client, d.plan)
    with CaptureQueriesContext(connection) as fragment:
        live(client, d.plan, after=0, state="x")
    attrs = poller(page(client, d.plan))
    after = int(re.search(r"after=(\d+)", attrs["hx-get"]).group(1))
    state = re.search(r"state=([^&]+)", attrs["hx-get"]).group(1)
    with CaptureQueriesContext(connection) as unchanged:
        assert live(client, d.plan, after=after, state=state, etag=attrs["etag"]).status_code == 304
    # The same bounds for 10 and 2,500 log lines (and any number of transitions and steps).
    assert len(full) <= 17, [q["sql"][:80] for q in full.captured_queries]
    assert len(fragment) <= 17, [q["sql"][:80] for q in fragment.captured_queries]
    assert len(unchanged) <= 3, [q["sql"][:80] for q in unchanged.captured_queries]
