"""Fuzzing the pages' forms and query strings with hypothesis: whatever a browser (or someone
with curl) sends, a page answers without a server error. The test client re-raises any
exception a view lets through, so a 500 fails the test with its traceback."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.models import PlanState
from tests.conftest import PASSWORD
from tests.deployments.test_plans import _plan, _prepared

pytestmark = pytest.mark.django_db

EXAMPLES = 25
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

TRICKY = [
    "",
    " ",
    "0",
    "-1",
    "1e9",
    "99999999999999999999999",
    "abc",
    "²",  # a digit to str.isdigit(), not to int()
    "\x00",
    "a\x00b",
    "\n",
    "2026-13-45",
    "2026-02-30T25:61",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' or 1=1 --",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "x" * 5000,
    "true",
    "on",
    "webhook",
    "email",
    "http://127.0.0.1:9/hook",
    "postgres://u:p@127.0.0.1:1/x",
    "Europe/Lisbon",
    "Mars/Olympus",
]


def values(keys: list[str]):
    return st.one_of(st.sampled_from(TRICKY + keys), st.text(max_size=60), st.integers().map(str))


def form(fields: list[str], keys: list[str]):
    """A form body: known fields (sometimes missing, sometimes repeated) plus strangers."""
    known = st.dictionaries(
        st.sampled_from(fields), st.lists(values(keys), min_size=1, max_size=3), max_size=len(fields)
    )
    strangers = st.dictionaries(st.text(min_size=1, max_size=12), values(keys).map(lambda v: [v]), max_size=2)
    return st.builds(lambda a, b: {**b, **a}, known, strangers)


@pytest.fixture
def world(landscape, admin_user, release_user, versions):
    version = versions("hr_core", "1.0.0")
    saved = _plan(landscape, release_user, [version])
    prepared = _prepared(_plan(landscape, release_user, [version], target="Test"))
    client = Client()
    client.force_login(admin_user)
    # Fresh authentication: the production actions run their bodies instead of asking for it.
    client.post(reverse("reauthenticate"), {"password": PASSWORD})
    prod = landscape["Production"]
    keys = [str(e.key) for e in landscape.values()] + [
        str(version.key),
        str(version.application.key),
        str(uuid.uuid4()),
    ]
    keys += [str(version.application.pk), f"version_{version.application.pk}", "undeploy"]
    return {
        "client": client,
        "prod": prod,
        "saved": saved,
        "prepared": prepared,
        "version": version,
        "keys": keys,
        "frontend": prod.frontends.first(),
    }


def no_server_error(response) -> None:
    assert response.status_code < 500, response.content[:2000]


def post_cases(world) -> dict[str, tuple[str, list[str]]]:
    prod, saved, prepared = world["prod"], world["saved"], world["prepared"]
    app_pk = world["version"].application.pk
    return {
        "environment create": (
            reverse("environments:create"),
            [
                "name",
                "order",
                "kind",
                "two_stage_deployments",
                "window_days",
                "window_start",
                "window_minutes",
                "window_timezone",
                "enforce_window",
                "prepared_plan_ttl_hours",
                "sql_lock_timeout_ms",
                "sql_statement_timeout_ms",
                "hostname",
                "use_https",
                "app_db_dsn",
                "clear_app_db",
            ],
        ),
        "environment edit": (
            reverse("environments:edit", args=[prod.key]),
            [
                "name",
                "order",
                "kind",
                "window_days",
                "window_start",
                "window_minutes",
                "window_timezone",
                "prepared_plan_ttl_hours",
                "app_db_dsn",
            ],
        ),
        "environment test connection": (reverse("environments:test_connection", args=[prod.key]), ["app_db_dsn"]),
        "front-end create": (
            reverse("environments:frontend_create", args=[prod.key]),
            ["name", "queue", "releases_root", "base_url", "health_url", "enabled"],
        ),
        "front-end edit": (
            reverse("environments:frontend_edit", args=[world["frontend"].key]),
            ["name", "releases_root", "base_url", "health_url", "enabled"],
        ),
        "front-end enabled": (reverse("environments:frontend_set_enabled", args=[world["frontend"].key]), ["enabled"]),
        "notification rule": (reverse("notifications:rules", args=[prod.key]), ["kind", "target", "events", "secret"]),
        "service account": (
            reverse("service_accounts:create"),
            ["name", "description"] + [f"level_{e}" for e in range(1, 6)],
        ),
        "plan create": (
            reverse("deployments:plan_create"),
            ["source", "target", "include", f"version_{app_pk}", "notes"],
        ),
        "plan save": (
            reverse("deployments:plan_save", args=[saved.key]),
            ["include", f"version_{app_pk}", "notes", "validate"],
        ),
        "plan continue": (reverse("deployments:plan_continue", args=[prepared.key]), ["reason"]),
        "plan schedule": (reverse("deployments:plan_schedule_continue", args=[prepared.key]), ["at"]),
        "plan suggestion": (reverse("deployments:plan_add_suggestion", args=[saved.key]), ["application"]),
        "mobile configure": (
            reverse("mobile:configure", args=[prod.key, world["version"].application.key]),
            ["app_id", "display_name", "platforms", "signing"],
        ),
        "reauthenticate": (reverse("reauthenticate"), ["password", "next"]),
    }


def get_cases(world) -> dict[str, tuple[str, list[str]]]:
    saved = world["saved"]
    return {
        "plans list": (
            reverse("deployments:plans"),
            ["q", "status", "target", "source", "application", "since", "until", "page", "user"],
        ),
        "plan create": (reverse("deployments:plan_create"), ["source", "target"]),
        "plan live": (reverse("deployments:plan_live", args=[saved.key]), ["after", "state", "view"]),
        "plan log": (reverse("deployments:plan_log_window", args=[saved.key]), ["before", "after"]),
        "board live": (reverse("deployments:board_live"), ["state"]),
        "audit": (reverse("audit"), ["since", "until", "environment", "actor", "action", "page"]),
        "audit export": (reverse("audit_export", args=["csv"]), ["since", "until", "environment", "actor"]),
        "reauthenticate": (reverse("reauthenticate"), ["next", "why"]),
        "login": (reverse("login"), ["next", "sso"]),
    }


POSTS = [
    "environment create", "environment edit", "environment test connection", "front-end create", "front-end edit",
    "front-end enabled", "notification rule", "service account", "plan create", "plan save", "plan continue",
    "plan schedule", "plan suggestion", "mobile configure", "reauthenticate",
]  # fmt: skip
GETS = [
    "plans list",
    "plan create",
    "plan live",
    "plan log",
    "board live",
    "audit",
    "audit export",
    "reauthenticate",
    "login",
]


@pytest.mark.parametrize("case", POSTS)
def test_fuzzed_form_posts_never_answer_500(world, case):
    url, fields = post_cases(world)[case]
    # Every tricky value in every field first, then what hypothesis comes up with.
    for value in TRICKY:
        no_server_error(world["client"].post(url, {field: value for field in fields}))

    @FUZZ
    @given(data=form(fields, world["keys"]))
    def run(data):
        no_server_error(world["client"].post(url, data))

    run()


@pytest.mark.parametrize("case", GETS)
def test_fuzzed_query_strings_never_answer_500(world, case):
    url, fields = get_cases(world)[case]
    for value in TRICKY:
        response = world["client"].get(url, {field: value for field in fields})
        no_server_error(response)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)

    @FUZZ
    @given(data=form(fields, world["keys"]))
    def run(data):
        response = world["client"].get(url, data)
        no_server_error(response)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)

    run()


@FUZZ
@given(username=st.one_of(st.sampled_from(TRICKY), st.text(max_size=200)), password=st.text(max_size=100))
def test_fuzzed_sign_ins_never_answer_500(db, username, password):
    client = Client(REMOTE_ADDR=f"192.0.2.{abs(hash(username)) % 250 + 1}")
    no_server_error(client.post(reverse("login"), {"username": username, "password": password}))


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fuzzed_uploads_never_answer_500(db, release_user, data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(release_user)
    for prefix in (b"", b"PK\x03\x04", b"\x1f\x8b\x08\x00"):
        response = client.post(reverse("catalog:upload"), {"bundle": SimpleUploadedFile("b.zip", prefix + data)})
        no_server_error(response)


def test_the_fuzzed_world_is_still_consistent(world):
    world["saved"].refresh_from_db()
    assert world["saved"].state == PlanState.SAVED
    assert dt.datetime.now(dt.UTC)
