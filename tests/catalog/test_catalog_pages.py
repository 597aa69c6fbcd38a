"""Catalog pages: upload for people with a deploy right, browse for everyone signed in."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from core.models import AuditEvent
from deployments.models import ApplicationVersion
from tests.catalog.conftest import example_bundle


def upload(client, data: bytes, name: str = "bundle.tar.gz"):
    return client.post(reverse("catalog:upload"), {"bundle": SimpleUploadedFile(name, data)})


def test_a_deploy_user_uploads_a_bundle_and_sees_its_data_model(client, release_user):
    client.force_login(release_user)
    assert client.get(reverse("catalog:upload")).status_code == 200
    response = upload(client, example_bundle("hr_core", "1.1.0"))
    version = ApplicationVersion.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("catalog:version", args=[version.key])
    assert version.created_by == release_user
    page = client.get(response["Location"]).content.decode()
    assert "hr_core 1.1.0" in page and "hr_core.payslip" in page and "character varying(254)" in page
    assert "sql/002_full_name.sql" in page
    listing = client.get(reverse("catalog:list")).content.decode()
    assert "hr_core" in listing and "1.1.0" in listing
    assert AuditEvent.objects.filter(action="application_version.registered", actor=release_user).exists()


def test_a_refused_bundle_shows_why_on_the_upload_page(client, release_user):
    client.force_login(release_user)
    response = upload(client, example_bundle("leave_portal", "1.0.0", {"lifetime.toml": None}), "b.zip")
    assert response.status_code == 200
    assert "No lifetime.toml at the root of the archive." in response.content.decode()
    assert not ApplicationVersion.objects.exists()


def test_a_view_only_user_may_browse_but_not_upload(client, ops_user, release_user):
    client.force_login(release_user)
    upload(client, example_bundle("field_inspector", "1.0.0"))
    client.force_login(ops_user)
    assert client.get(reverse("catalog:upload")).status_code == 403
    assert upload(client, example_bundle("field_inspector", "1.1.0")).status_code == 403
    assert ApplicationVersion.objects.count() == 1
    page = client.get(reverse("catalog:list")).content.decode()
    assert "field_inspector" in page and "Upload Application" not in page
    version = ApplicationVersion.objects.get()
    assert "com.example.fieldinspector" in client.get(reverse("catalog:version", args=[version.key])).content.decode()


def test_register_bundle_command_registers_files(db, tmp_path, admin_user, capsys):
    path = tmp_path / "leave_portal-1.0.0.zip"
    path.write_bytes(example_bundle("leave_portal", "1.0.0"))
    call_command("register_bundle", str(path), "--user", "admin")
    assert "registered leave_portal 1.0.0" in capsys.readouterr().out
    assert ApplicationVersion.objects.get().created_by == admin_user
