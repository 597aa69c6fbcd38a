"""The API's status of a deployment, what pipelines poll: its queries do not grow with the log,
the stages or the steps (counted on real PostgreSQL, never timed)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from environments.models import AccessLevel
from tests.api.conftest import ApiClient, create_token
from tests.status.drive import fill_log


def _status_queries(api: ApiClient, plan) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"/deployments/{plan.key}/status")
    assert response.status_code == 200
    return len(queries)


def test_api_status_of_a_prepared_plan_costs_the_same_queries_for_10_or_2500_log_lines(landscape, driver):
    d = driver()
    d.prepare()
    api = ApiClient(create_token("pipeline", {env: AccessLevel.VIEW for env in landscape.values()}))
    fill_log(d.plan, 10)
    api.get(f"/deployments/{d.plan.key}/status")  # the token's first use writes its last-used time
    few = _status_queries(api, d.plan)
    fill_log(d.plan, 2490)
    many = _status_queries(api, d.plan)
    # 9: the account, the plan, the rights (2), the SQL, the front-ends, the steps, the further
    # windows (the estimate against the window) and the log.
    assert few == many and many <= 9, (few, many)
    assert len(api.get(f"/deployments/{d.plan.key}/status").json()["DeploymentLog"]) >= 2500


def test_api_status_of_a_running_continue_costs_the_same_queries_for_10_or_2500_log_lines(landscape, driver):
    d = driver()
    d.prepare()
    stage = d.continue_()
    d.execute_sql(stage, upto=2)
    api = ApiClient(create_token("pipeline", {env: AccessLevel.VIEW for env in landscape.values()}))
    fill_log(d.plan, 10)
    api.get(f"/deployments/{d.plan.key}/status")
    few = _status_queries(api, d.plan)
    fill_log(d.plan, 2490)
    many = _status_queries(api, d.plan)
    assert few == many and many <= 5, (few, many)
