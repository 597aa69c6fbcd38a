"""The environment board: what runs, what is prepared and for how long, what is running and at
which step, and every front-end agent."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deployments.models import StageKind
from environments.models import FrontEnd
from tests.conftest import PASSWORD
from tests.status.drive import PlanDriver, new_plan

pytestmark = pytest.mark.django_db


def board(client) -> str:
    response = client.get(reverse("deployments:board"))
    assert response.status_code == 200
    return response.content.decode()


def test_board_shows_prepared_waiting_and_running_with_its_step(
    client, ops_user, landscape, driver, release_user, versions
):
    prepared = driver()
    prepared.prepare()
    running = PlanDriver(
        new_plan(actor=release_user, source=landscape["Development"], target=landscape["Test"], versions=versions),
        actor=release_user,
    )
    running.start()
    stage = running.stage(StageKind.PREPARE)
    running.validate(stage)
    running.compile(stage, versions[0], finish=False)
    client.login(username="ops", password=PASSWORD)
    html = board(client)
    assert "waiting for" in html and "expires" in html
    expires = prepared.plan.prepared_at + dt.timedelta(hours=96)
    assert timezone.localtime(expires).strftime("%Y-%m-%d %H:%M") in html
    assert "Prepare › Compile hr_core" in html
    assert "Free: no plan running or prepared." in html  # Development
    assert 'href="/board/"' in html  # top navigation


def test_board_shows_each_agent_state(client, ops_user, landscape):
    now = timezone.now()
    prod = landscape["Production"]
    FrontEnd.objects.filter(environment=prod, name="fe1").update(
        last_seen_at=now - dt.timedelta(seconds=12),
        last_report={"ok": True, "applications": {"hr_core": {"current": "r1"}}, "disk_free_bytes": 5 * 2**30},
    )
    FrontEnd.objects.filter(environment=prod, name="fe2").update(last_seen_at=now - dt.timedelta(minutes=20))
    client.login(username="ops", password=PASSWORD)
    html = board(client)
    # (A slow machine renders the page a few seconds after the rows were written.)
    assert 'class="agent ok"' in html and re.search(r"answered 1\d s ago", html)
    assert "1 app" in html and "5.0\xa0GB free" in html
    assert 'class="agent silent"' in html and re.search(r"answered 20 min 0\d s ago", html)
    assert 'class="agent never"' in html  # the other environments' agents never answered
    assert "1 of 2 answering" in html


def test_board_answers_304_until_something_changes_and_costs_few_queries(client, ops_user, driver):
    d = driver()
    d.start()
    client.login(username="ops", password=PASSWORD)
    first = client.get(reverse("deployments:board_live"))
    etag = first["ETag"]
    with CaptureQueriesContext(connection) as queries:
        unchanged = client.get(reverse("deployments:board_live"), HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert len(queries) <= 3, [q["sql"][:80] for q in queries.captured_queries]
    d.log("a log line alone does not change the board")
    assert client.get(reverse("deployments:board_live"), HTTP_IF_NONE_MATCH=etag).status_code == 304
    d.stage(StageKind.PREPARE)
    assert client.get(reverse("deployments:board_live"), HTTP_IF_NONE_MATCH=etag).status_code == 200
    with CaptureQueriesContext(connection) as full:
        client.get(reverse("deployments:board_live"))
    # 12, plus one query for every environment's further windows and one for their freezes.
    assert len(full) <= 14, [q["sql"][:90] for q in full.captured_queries]
