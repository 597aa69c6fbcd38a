"""The deployment plans list: filters, search, pages, the Prepared ones and who holds what."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.actors import Actor
from deployments.models import DeploymentPlan
from tests.conftest import PASSWORD, make_user
from tests.status.drive import PlanDriver, new_plan

pytestmark = pytest.mark.django_db


def rows(client, **query) -> str:
    response = client.get(reverse("deployments:plans"), query)
    assert response.status_code == 200
    html = response.content.decode()
    # The banner of holders names plans whatever the filters: leave it out of what the rows show.
    start = html.index('<div class="holders">')
    return html[:start] + html[html.index("</div>\n<form", start) :]


@pytest.fixture
def history(landscape, release_user, versions):
    """A prepared plan on Production, an older finished one there, saved plans on Test by someone else."""
    hr_core, leave_portal = versions
    finished = PlanDriver(
        new_plan(
            actor=release_user,
            source=landscape["Test"],
            target=landscape["Production"],
            versions=[hr_core],
            notes="hotfix payroll rounding",
        ),
        actor=release_user,
    )
    finished.prepare()
    finished.continue_all()
    prepared = PlanDriver(
        new_plan(
            actor=release_user,
            source=landscape["Test"],
            target=landscape["Production"],
            versions=[hr_core, leave_portal],
            notes="Quarterly HR release",
        ),
        actor=release_user,
    )
    prepared.prepare()
    other = make_user("dana")
    from environments import services as env_services
    from environments.models import AccessLevel

    env_services.set_access(
        actor=Actor.system("test"), user=other, environment=landscape["Test"], level=AccessLevel.DEPLOY
    )
    env_services.set_access(
        actor=Actor.system("test"), user=other, environment=landscape["Development"], level=AccessLevel.VIEW
    )
    saved = [
        new_plan(
            actor=other, source=landscape["Development"], target=landscape["Test"], versions=[leave_portal], notes=n
        )
        for n in ("try leave rules", "second try")
    ]
    return {"finished": finished.plan, "prepared": prepared.plan, "saved": saved}


def test_prepared_plans_are_marked_and_the_holder_named(client, ops_user, history):
    client.login(username="ops", password=PASSWORD)
    html = rows(client)
    assert "Production</b> is held by" in client.get(reverse("deployments:plans")).content.decode()
    assert 'class="prepared-row"' in html
    assert "holds Production" in html
    only_prepared = rows(client, status="prepared")
    assert str(history["prepared"].key) in only_prepared
    assert str(history["finished"].key) not in only_prepared
    assert "1 plan" in only_prepared


def test_filters_by_target_application_who_and_dates(client, ops_user, landscape, history, versions):
    client.login(username="ops", password=PASSWORD)
    on_test = rows(client, target=landscape["Test"].key)
    assert all(str(p.key) in on_test for p in history["saved"])
    assert str(history["prepared"].key) not in on_test
    with_leave = rows(client, application=versions[1].application.key)
    assert str(history["finished"].key) not in with_leave
    assert str(history["prepared"].key) in with_leave
    by_dana = rows(client, who="dana")
    assert "2 plans" in by_dana and str(history["prepared"].key) not in by_dana
    by_release = rows(client, who="release")  # created or started by
    assert str(history["prepared"].key) in by_release
    today = dt.date.today().isoformat()
    assert "4 plans" in rows(client, since=today, until=today)
    assert "No deployment plans match" in rows(client, until="2001-01-01")


def test_search_finds_notes_and_keys(client, ops_user, history):
    client.login(username="ops", password=PASSWORD)
    assert str(history["finished"].key) in rows(client, q="payroll")
    key = history["saved"][0].key
    by_key = rows(client, q=str(key))
    assert "1 plan" in by_key and str(key) in by_key
    assert str(key) in rows(client, q=str(key)[:8])


def test_the_list_only_shows_plans_of_environments_one_may_see(client, landscape, history):
    make_user("stranger")
    client.login(username="dana", password=PASSWORD)
    html = rows(client)
    assert str(history["prepared"].key) not in html and "2 plans" in html


@pytest.mark.parametrize("count", [5, 60])
def test_list_costs_the_same_queries_for_few_or_many_plans(client, ops_user, landscape, release_user, versions, count):
    for number in range(count):
        new_plan(
            actor=release_user,
            source=landscape["Development"],
            target=landscape["Test"],
            versions=versions,
            notes=f"plan {number}",
        )
    client.login(username="ops", password=PASSWORD)
    rows(client)
    with CaptureQueriesContext(connection) as queries:
        html = rows(client, status="saved", q="plan")
    assert len(queries) <= 12, [q["sql"][:90] for q in queries.captured_queries]
    assert html.count("<tr class=") == min(count, 25)
    assert DeploymentPlan.objects.count() == count
    if count > 25:
        assert "Older" in html
        second = rows(client, status="saved", q="plan", page=2)
        assert "Page 2 of 3" in second and "status=saved" in second
