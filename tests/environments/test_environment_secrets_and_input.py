"""The application database connection is a secret; bad input gets a message and saves nothing."""

from __future__ import annotations

import logging

from django.urls import reverse

from core.models import AuditEvent
from environments.models import Environment
from tests.conftest import dsn_for
from tests.environments.test_environment_pages import _form_data


def _with_password(dsn: str, password: str) -> str:
    # trust auth ignores the password, which lets a test plant a recognisable secret
    return dsn.replace("postgres@", f"postgres:{password}@", 1)


def test_the_connection_string_never_appears_in_any_page_or_the_audit_trail(
    client, landscape, admin_user, app_databases, caplog
):
    caplog.set_level(logging.DEBUG)
    client.force_login(admin_user)
    prod = landscape["Production"]
    secret = "S3cr3t-Pa55-word"
    dsn = _with_password(app_databases.create(), secret)
    response = client.post(reverse("environments:edit", args=[prod.key]), _form_data(prod, app_db_dsn=dsn))
    assert response.status_code == 302
    prod.refresh_from_db()
    assert secret not in prod.app_db_dsn_encrypted  # encrypted at rest
    assert prod.app_db_dsn() == dsn
    pages = [
        reverse("environments:list"),
        reverse("environments:detail", args=[prod.key]),
        reverse("environments:edit", args=[prod.key]),
        reverse("audit"),
        reverse("home"),
    ]
    for url in pages:
        assert secret not in client.get(url).content.decode(), url
    event = AuditEvent.objects.filter(object_key=str(prod.key)).first()
    assert event.changes["app_db"] == "(changed, not shown)"
    assert secret not in str(list(AuditEvent.objects.values_list("changes", "message")))
    assert secret not in caplog.text


def test_test_connection_really_connects_and_says_what_failed(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    ok = client.post(reverse("environments:test_connection", args=[prod.key]))
    assert "Connected to" in ok.content.decode()
    bad = client.post(
        reverse("environments:test_connection", args=[prod.key]),
        {"app_db_dsn": dsn_for("no_such_database_here")},
    )
    text = bad.content.decode()
    assert bad.status_code == 200
    assert "Cannot connect" in text and "no_such_database_here" in text


def test_duplicate_name_is_refused_with_a_message(client, landscape, admin_user):
    client.force_login(admin_user)
    test_env = landscape["Test"]
    response = client.post(reverse("environments:edit", args=[test_env.key]), _form_data(test_env, name="production"))
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Environment.objects.get(pk=test_env.pk).name == "Test"


def test_a_window_without_a_start_is_refused(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    response = client.post(reverse("environments:edit", args=[prod.key]), _form_data(prod, window_start=""))
    assert response.status_code == 200
    assert "needs days, a start time and a duration" in response.content.decode()


def test_an_unknown_time_zone_and_a_too_long_window_are_refused(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    page = client.post(
        reverse("environments:edit", args=[prod.key]),
        _form_data(prod, window_timezone="Mars/Olympus", window_minutes=5000),
    ).content.decode()
    assert "Unknown time zone" in page
    assert "less than or equal to 1440" in page
    prod.refresh_from_db()
    assert prod.window_timezone == "UTC" and prod.window_minutes == 120


def test_a_malformed_connection_string_is_refused_and_nothing_saved(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    before = prod.app_db_dsn_encrypted
    for bad in ["host=localhost dbname", "mysql://root@localhost/db", "postgres://postgres@127.0.0.1:5432/"]:
        response = client.post(
            reverse("environments:edit", args=[prod.key]), _form_data(prod, app_db_dsn=bad, sql_lock_timeout_ms=777)
        )
        assert response.status_code == 200, bad
        page = response.content.decode()
        assert "Malformed connection string" in page or "postgres:// URL" in page or "must name a database" in page
        prod.refresh_from_db()
        assert prod.app_db_dsn_encrypted == before and prod.sql_lock_timeout_ms != 777


def test_an_unreachable_database_is_a_message_not_a_500(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    response = client.post(
        reverse("environments:edit", args=[prod.key]),
        _form_data(prod, app_db_dsn="postgres://postgres@127.0.0.1:1/nowhere"),
    )
    assert response.status_code == 200
    assert "Cannot connect to postgres@127.0.0.1:1/nowhere" in response.content.decode()


def test_a_relative_frontend_folder_is_refused(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    response = client.post(
        reverse("environments:frontend_create", args=[prod.key]),
        {"name": "fe3", "releases_root": "relative/path", "enabled": "on"},
    )
    assert "absolute path" in response.content.decode()
    assert prod.frontends.count() == 2


def test_frontends_are_added_edited_and_disabled_with_an_audit_trail(client, landscape, admin_user, tmp_path):
    client.force_login(admin_user)
    prod = landscape["Production"]
    response = client.post(
        reverse("environments:frontend_create", args=[prod.key]),
        {"name": "fe3", "releases_root": str(tmp_path / "fe3"), "base_url": "http://127.0.0.1:9999/", "enabled": "on"},
    )
    assert response.status_code == 200 and "shown only this once" in response.content.decode()
    fe = prod.frontends.get(name="fe3")
    assert fe.queue == "frontend.production.fe3"
    assert not (tmp_path / "fe3").exists(), "the console creates no folder: the agent makes its own"
    client.post(reverse("environments:frontend_set_enabled", args=[fe.key]), {"enabled": "false"})
    fe.refresh_from_db()
    assert not fe.enabled
    page = client.get(reverse("environments:detail", args=[prod.key])).content.decode()
    assert "frontend.created" in page and "frontend.disabled" in page
    dup = client.post(
        reverse("environments:frontend_create", args=[prod.key]),
        {"name": "FE3", "releases_root": str(tmp_path / "other"), "enabled": "on"},
    )
    assert "already has a front-end named" in dup.content.decode()


def test_every_environment_change_is_in_its_history_with_who_and_what(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    client.post(reverse("environments:edit", args=[prod.key]), _form_data(prod, prepared_plan_ttl_hours=48))
    event = AuditEvent.objects.filter(object_key=str(prod.key), action="environment.changed").first()
    assert event.actor_name == "admin"
    assert event.changes == {"prepared_plan_ttl_hours": [96, 48]}
    page = client.get(reverse("environments:detail", args=[prod.key])).content.decode()
    assert "96 → 48" in page
