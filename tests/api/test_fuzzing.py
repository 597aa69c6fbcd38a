"""Fuzzing the API with schemathesis, from its own OpenAPI document, against a live server on
loopback: no answer may be a 500, and every answer must be one the document describes (status
code, content type, headers, body schema).

Each operation gets valid requests with random keys, valid requests with the keys of real rows
(so that the 200/201/202 paths run, not only the 404s), and invalid requests (bad keys, bad
booleans and dates, malformed bodies). Bounded: a few dozen examples per operation and mode,
no example database, so that a run takes seconds and repeats the same way.
"""

from __future__ import annotations

import time

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode, checks

from core.actors import Actor
from deployments.api.openapi import build
from deployments.plans import services as plans
from tests.api.conftest import create_token, record_running, saved_plan
from tests.api.test_deployments import mark_prepared

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES_PER_MODE = 40
# The whole run must stay well under this: a slower one means the API or the fuzzer changed.
TIME_BUDGET_S = 120

# Not negative_data_rejection: the API ignores query parameters it does not know (clients send
# extra ones), which that check counts as accepting invalid data. Bad values of known parameters
# are 400s, asserted one by one in the other tests.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]


@pytest.fixture
def real_keys(landscape, register, release_user) -> dict[str, str]:
    from environments.models import AccessLevel

    hr_core = register("hr_core", "1.0.0")
    record_running(landscape["Development"], hr_core)
    saved = saved_plan(release_user, landscape["Development"], landscape["Test"], [hr_core])
    prepared = saved_plan(release_user, landscape["Development"], landscape["Production"], [hr_core])
    plans.start_plan(actor=Actor.person(release_user), plan=prepared)
    mark_prepared(prepared)
    return {
        "token": create_token("fuzzer", {env: AccessLevel.DEPLOY for env in landscape.values()}),
        "EnvironmentKey": str(landscape["Development"].key),
        "ApplicationKey": str(hr_core.application.key),
        "VersionKey": str(hr_core.key),
        "saved": str(saved.key),
        "prepared": str(prepared.key),
    }


def _pinned(operation, keys: dict[str, str]) -> dict[str, str]:
    names = {p.name for p in operation.path_parameters}
    pinned = {name: keys[name] for name in names if name in keys}
    if "DeploymentKey" in names:
        pinned["DeploymentKey"] = keys["prepared"] if "continue" in operation.path else keys["saved"]
    return pinned


def test_fuzzing_finds_no_server_error_and_no_answer_outside_the_document(live_server, real_keys, monkeypatch):
    from django.core.servers.basehttp import WSGIRequestHandler

    # The test server writes headers and body in two sends: with Nagle on, each keep-alive
    # request then waits out the client's delayed ACK (40 ms), which made this run 5 times slower.
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    base_url = f"{live_server.url}/lifetimeapi/rest/v2"
    schema = schemathesis.openapi.from_dict(build())
    headers = {"Authorization": f"Bearer {real_keys['token']}"}
    session = requests.Session()
    started = time.monotonic()
    calls = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        runs = [
            (GenerationMode.POSITIVE, {}),
            (GenerationMode.POSITIVE, _pinned(operation, real_keys)),
            (GenerationMode.NEGATIVE, {}),
        ]
        for mode, pinned in runs:

            @hypothesis.settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned or None))
            def run(case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
                case.validate_response(response, checks=CHECKS, headers=headers)

            run()
            assert time.monotonic() - started < TIME_BUDGET_S, f"fuzzing took too long after {calls} calls"

    print(f"fuzzing: {calls} calls in {time.monotonic() - started:.1f} s")
    assert calls > 14 * EXAMPLES_PER_MODE
