"""Bundles: the examples are accepted; bad bundles are refused with a clear message, storing nothing."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from core.actors import Actor
from core.models import AuditEvent
from deployments.artifacts import store as artifacts
from deployments.catalog import bundles
from deployments.catalog import services as catalog
from deployments.catalog.bundles import BundleRefused, read_bundle
from deployments.models import Application, ApplicationVersion
from tests.catalog.conftest import example_bundle, example_files

MANIFEST = example_files("leave_portal", "1.0.0")["lifetime.toml"].decode()


def stored_blobs() -> list:
    root = artifacts.root()
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_refused(data: bytes, admin_user, *words: str) -> str:
    with pytest.raises(BundleRefused) as caught:
        catalog.register_bundle(data=data, actor=Actor.person(admin_user))
    message = caught.value.message
    for word in words:
        assert word in message, message
    assert not Application.objects.exists()
    assert not ApplicationVersion.objects.exists()
    assert stored_blobs() == []
    return message


def tar_with(members: list[tarfile.TarInfo], manifest: str = MANIFEST) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in example_files("leave_portal", "1.0.0").items():
            if path == "lifetime.toml":
                data = manifest.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for member in members:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("app", "version"), [("hr_core", "1.0.0"), ("leave_portal", "1.1.0"), ("field_inspector", "2.0.0")]
)
def test_example_bundles_are_accepted_in_both_archive_formats(app, version):
    for fmt in ("zip", "tar.gz"):
        bundle = read_bundle(example_bundle(app, version, fmt=fmt))
        assert (bundle.manifest.name, bundle.manifest.version) == (app, version)
        assert bundle.manifest.data_model.tables


def test_registering_creates_the_application_with_its_first_version_and_audits_it(db, admin_user):
    version = catalog.register_bundle(data=example_bundle("field_inspector", "1.0.0"), actor=Actor.person(admin_user))
    assert version.application.kind == "mobile"
    assert version.native_hash and len(version.native_hash) == 64
    assert artifacts.verify(version.bundle_sha256)
    assert version.manifest["data_model"]["schema"] == "field_inspector"
    event = AuditEvent.objects.get(action="application_version.registered")
    assert event.object_label == "field_inspector 1.0.0" and event.actor == admin_user


def test_native_hash_changes_only_when_the_native_shell_changes(db, admin_user):
    first, same, changed = (
        catalog.register_bundle(data=example_bundle("field_inspector", v), actor=Actor.person(admin_user))
        for v in ("1.0.0", "1.1.0", "2.0.0")
    )
    assert first.native_hash == same.native_hash != changed.native_hash


def test_a_bundle_without_manifest_is_refused(db, admin_user):
    assert_refused(example_bundle("leave_portal", "1.0.0", {"lifetime.toml": None}), admin_user, "No lifetime.toml")


def test_broken_toml_is_refused(db, admin_user):
    data = example_bundle("leave_portal", "1.0.0", {"lifetime.toml": b"[application\nname = 'x'"})
    assert_refused(data, admin_user, "not valid TOML")


def test_an_unknown_column_type_is_refused(db, admin_user):
    manifest = MANIFEST.replace('type = "smallint"', 'type = "money"')
    message = assert_refused(
        example_bundle("leave_portal", "1.0.0", {"lifetime.toml": manifest.encode()}), admin_user, "unknown column type"
    )
    assert "'money'" in message and "leave_balance.year" in message


def test_a_version_that_is_not_pep_440_is_refused(db, admin_user):
    manifest = MANIFEST.replace('version = "1.0.0"', 'version = "one.zero"')
    assert_refused(example_bundle("leave_portal", "1.0.0", {"lifetime.toml": manifest.encode()}), admin_user, "PEP 440")


def test_a_dependency_range_that_is_not_pep_440_is_refused(db, admin_user):
    manifest = MANIFEST.replace('hr_core = ">=1.0,<2"', 'hr_core = "about 1"')
    assert_refused(
        example_bundle("leave_portal", "1.0.0", {"lifetime.toml": manifest.encode()}), admin_user, "version range"
    )


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_path_traversal_is_refused(db, admin_user, fmt):
    data = example_bundle("leave_portal", "1.0.0", {"src/../../evil.py": b"x"}, fmt=fmt)
    assert_refused(data, admin_user, "path traversal")


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_absolute_paths_are_refused(db, admin_user, fmt):
    files = dict(example_files("leave_portal", "1.0.0"))
    files["/etc/cron.d/evil"] = b"x"
    from examples.build import pack

    assert_refused(pack(files, fmt), admin_user, "absolute paths")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_and_devices_in_a_tar_are_refused(db, admin_user, kind):
    member = tarfile.TarInfo("src/leave_portal/link")
    member.type = kind
    member.linkname = "/etc/passwd"
    assert_refused(tar_with([member]), admin_user, "not allowed")


def test_a_symlink_in_a_zip_is_refused(db, admin_user):
    buffer = io.BytesIO(example_bundle("leave_portal", "1.0.0", fmt="zip"))
    with zipfile.ZipFile(buffer, "a") as archive:
        info = zipfile.ZipInfo("src/leave_portal/link")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    assert_refused(buffer.getvalue(), admin_user, "symbolic link")


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_an_archive_bomb_is_refused(db, admin_user, monkeypatch, fmt):
    monkeypatch.setattr(bundles, "MAX_UNPACKED_BYTES", 1024 * 1024)
    data = example_bundle("leave_portal", "1.0.0", {"src/leave_portal/zeros.txt": b"\0" * (2 * 1024 * 1024)}, fmt=fmt)
    assert len(data) < 100 * 1024  # a small archive...
    assert_refused(data, admin_user, "archive bomb")  # ...that would unpack too far


def test_an_archive_with_too_many_files_is_refused(db, admin_user, monkeypatch):
    monkeypatch.setattr(bundles, "MAX_FILES", 10)
    changes = {f"src/leave_portal/f{i}.txt": b"x" for i in range(20)}
    assert_refused(example_bundle("leave_portal", "1.0.0", changes), admin_user, "more than 10 files")


def test_a_file_that_is_not_an_archive_is_refused(db, admin_user):
    assert_refused(b"hello, I am not a zip", admin_user, "zip or a tar.gz")


def test_a_mobile_application_without_native_shell_is_refused(db, admin_user):
    manifest = example_files("field_inspector", "1.0.0")["lifetime.toml"].decode().split("[native]")[0]
    data = example_bundle("field_inspector", "1.0.0", {"lifetime.toml": manifest.encode()})
    assert_refused(data, admin_user, "[native]")


def test_a_wsgi_entry_point_outside_the_sources_is_refused(db, admin_user):
    manifest = MANIFEST.replace("leave_portal.app:application", "elsewhere.app:application")
    assert_refused(
        example_bundle("leave_portal", "1.0.0", {"lifetime.toml": manifest.encode()}), admin_user, "not in src/"
    )


def test_a_registered_version_number_is_never_reused(db, admin_user):
    catalog.register_bundle(data=example_bundle("leave_portal", "1.0.0"), actor=Actor.person(admin_user))
    blobs = stored_blobs()
    changed = example_bundle("leave_portal", "1.0.0", {"src/leave_portal/extra.py": b"X = 1\n"})
    with pytest.raises(BundleRefused, match="already registered: a version number is never reused"):
        catalog.register_bundle(data=changed, actor=Actor.person(admin_user))
    assert ApplicationVersion.objects.count() == 1
    assert stored_blobs() == blobs
