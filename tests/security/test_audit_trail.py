"""The audit trail: append-only for the application's own database role, fed by refusals and by
/admin/, masked where it would show a credential, exported as CSV and JSON for infra admins."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.urls import reverse

from core import audit
from core.actors import Actor
from core.models import AuditEvent
from deployments.notifications import services as notifications
from environments.access import INFRA_ADMINS_GROUP
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_the_application_role_cannot_update_or_delete_an_audit_row(admin_user):
    event = audit.record(actor=Actor.person(admin_user), action="test.recorded", object_type="test", message="kept")
    for statement, params in (
        ("update lifetime_auditevent set message = %s where id = %s", ["rewritten", event.pk]),
        ("delete from lifetime_auditevent where id = %s", [event.pk]),
    ):
        with pytest.raises(DatabaseError, match="the audit trail is append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="test.forged")
    event.refresh_from_db()
    assert (event.action, event.message) == ("test.recorded", "kept")


def test_deleting_an_account_keeps_its_audit_rows_with_its_name():
    user = make_user("leaver")
    audit.record(actor=Actor.person(user), action="test.recorded", object_type="test")
    user.delete()
    event = AuditEvent.objects.get(action="test.recorded")
    assert (event.actor, event.actor_name) == (None, "leaver")


def test_every_refused_page_is_an_audit_row(client, landscape, ops_user):
    client.force_login(ops_user)
    prod = landscape["Production"]
    assert client.get(reverse("environments:edit", args=[prod.key])).status_code == 403
    assert client.get(reverse("audit")).status_code == 403
    rows = list(AuditEvent.objects.filter(action="access.refused").order_by("id"))
    assert [(r.actor, r.object_label, r.environment_key) for r in rows] == [
        (ops_user, f"GET /environments/{prod.key}/edit/", prod.key),
        (ops_user, "GET /audit/", None),
    ]
    assert rows[0].message == "You need the Manage right on Production."
    assert rows[1].message == "Only infra admins see the whole audit trail."


def test_changes_through_admin_are_audit_rows_and_environments_are_read_only_there(client, landscape, admin_user):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    someone = make_user("someone")
    group = Group.objects.get(name=INFRA_ADMINS_GROUP)
    response = client.post(
        reverse("admin:auth_user_change", args=[someone.pk]),
        {
            "username": "someone",
            "email": "someone@example.com",
            "is_active": "on",
            "groups": [group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert someone.groups.filter(name=INFRA_ADMINS_GROUP).exists()
    event = AuditEvent.objects.get(action="admin.changed")
    assert (event.actor, event.object_type, event.object_label) == (admin_user, "auth.user", "someone")
    assert "Groups" in event.message and event.message.startswith("Through /admin/")
    # Bulk deletions too (Django writes their log rows with one bulk insert).
    others = [make_user(f"temp{i}") for i in range(2)]
    client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [u.pk for u in others], "post": "yes"},
    )
    assert not User.objects.filter(username__startswith="temp").exists()
    assert set(AuditEvent.objects.filter(action="admin.deleted").values_list("object_label", flat=True)) == {
        "temp0",
        "temp1",
    }
    # Environments change through the console's services only.
    prod = landscape["Production"]
    assert client.get(reverse("admin:environments_environment_change", args=[prod.pk])).status_code == 200
    assert (
        client.post(reverse("admin:environments_environment_change", args=[prod.pk]), {"name": "X"}).status_code == 403
    )
    assert client.get(reverse("admin:environments_environment_add")).status_code == 403


def test_webhook_urls_are_masked_in_audit_rows_shown_to_viewers(client, landscape, admin_user, ops_user):
    prod = landscape["Production"]
    # (A loopback address: the tests allow it as an outbound target; its path is the secret part.)
    url = "http://127.0.0.1:9/services/T0001/B0002/very-secret-token"
    notifications.save_rule(
        actor=Actor.person(admin_user), environment=prod, kind="webhook", target=url, events=["prepared"]
    )
    client.force_login(ops_user)
    page = client.get(reverse("environments:detail", args=[prod.key])).content.decode()
    assert "notification_rule.saved" in page
    assert "very-secret-token" not in page and "T0001" not in page
    assert "http://127.0.0.1:9/…" in page
    assert "very-secret-token" not in json.dumps(list(AuditEvent.objects.values("object_label", "changes", "message")))


def test_the_generated_webhook_secret_is_shown_once_in_the_answer_and_never_in_a_cookie(client, landscape, admin_user):
    client.force_login(admin_user)
    prod = landscape["Production"]
    response = client.post(
        reverse("notifications:rules", args=[prod.key]),
        {"kind": "webhook", "target": "http://127.0.0.1:9/hook", "events": ["prepared"]},
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    rule = prod.notification_rules.get()
    from core import encryption

    secret = encryption.decrypt(rule.secret_encrypted)
    assert secret in response.content.decode()
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert secret not in str(dict(client.session))
    again = client.get(reverse("notifications:rules", args=[prod.key])).content.decode()
    assert secret not in again


def _export(client, fmt: str, **filters):
    response = client.get(reverse("audit_export", args=[fmt]), filters)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def test_infra_admins_export_the_trail_as_csv_and_json_filtered_by_date_environment_and_actor(
    client, landscape, admin_user, release_user, ops_user
):
    prod, test = landscape["Production"], landscape["Test"]
    audit.record(
        actor=Actor.person(release_user), action="test.one", object_type="t", environment_key=prod.key, message="=1+1"
    )
    audit.record(actor=Actor.person(release_user), action="test.two", object_type="t", environment_key=test.key)
    audit.record(actor=Actor.person(ops_user), action="test.three", object_type="t", environment_key=prod.key)
    client.force_login(admin_user)
    rows = list(
        csv.DictReader(io.StringIO(_export(client, "csv", environment=prod.key, actor=Actor.system("release"))))
    )
    assert [(r["action"], r["environment"], r["actor"]) for r in rows] == [("test.one", "Production", "release")]
    assert rows[0]["message"] == "'=1+1"  # never a formula in a spreadsheet
    data = json.loads(_export(client, "json", actor=Actor.system("release")))
    assert [r["action"] for r in data] == ["test.two", "test.one"]
    today = rows[0]["at"][:10]
    assert len(json.loads(_export(client, "json", since=today, until=today, action="test."))) == 3
    assert json.loads(_export(client, "json", since="2000-01-01", until="2000-01-02")) == []
    bad = client.get(reverse("audit_export", args=["csv"]), {"since": "yesterday"})
    assert bad.status_code == 400 and "Enter a valid date" in bad.content.decode()
    assert AuditEvent.objects.filter(action="audit.exported", actor=admin_user).count() == 4
    # The page shows the same filters.
    page = client.get(reverse("audit"), {"environment": prod.key}).content.decode()
    assert "test.one" in page and "test.three" in page and "test.two" not in page
    client.force_login(release_user)
    assert client.get(reverse("audit_export", args=["json"])).status_code == 403
