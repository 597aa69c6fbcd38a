"""Two pipelines (or a double click) continuing the same prepared plan at the same moment: one
Continue runs, the other gets a 409, and only one Continue stage exists."""

from __future__ import annotations

import threading

import pytest
import requests

from core.actors import Actor
from deployments.models import PlanState
from environments.models import AccessLevel
from tests.api.conftest import create_token, record_running, saved_plan
from tests.api.test_deployments import mark_prepared

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("attempt", range(3))
def test_simultaneous_continues_run_once_and_the_other_gets_409(
    live_server, landscape, register, release_user, attempt
):
    dev, prod = landscape["Development"], landscape["Production"]
    hr_core = register("hr_core", "1.0.0")
    record_running(dev, hr_core)
    plan = saved_plan(release_user, dev, prod, [hr_core])
    from deployments.plans import services as plans

    plans.start_plan(actor=Actor.person(release_user), plan=plan)
    mark_prepared(plan)
    tokens = [create_token(f"pipeline-{n}", {prod: AccessLevel.DEPLOY, dev: AccessLevel.VIEW}) for n in (1, 2)]
    url = f"{live_server.url}/lifetimeapi/rest/v2/deployments/{plan.key}/continue"
    barrier = threading.Barrier(len(tokens))
    codes: list[int] = []

    def press(token: str) -> None:
        barrier.wait()
        codes.append(requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code)

    threads = [threading.Thread(target=press, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == [202, 409]
    plan.refresh_from_db()
    assert plan.state == PlanState.CONTINUING
    assert plan.stages.filter(kind="continue").count() == 1
