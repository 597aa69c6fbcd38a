"""Hostile uploads: each is refused in under a second, with bounded memory and a sentence, and
nothing is stored. Time and memory are measured around the real reading code (tracemalloc counts
every allocation Python makes while the bundle is read), and again through the upload page."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.catalog.bundles import BundleRefused, read_bundle
from deployments.models import Application, ApplicationVersion
from tests.catalog.conftest import example_bundle
from tests.security import archives

MiB = 1024 * 1024
# What reading a refused bundle may allocate on top of the upload itself: the largest buffer a
# reader holds is one extended header (64 KB) or the central directory walk (no objects).
MEMORY_BOUND = 8 * MiB


def measured(read: Callable[[], object]) -> tuple[str, float, int]:
    """(the refusal's sentence, seconds, peak bytes allocated) of one refused read."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    try:
        with pytest.raises(BundleRefused) as refused:
            read()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return refused.value.message, elapsed, peak


HOSTILE = {
    # name: (archive maker, words of the sentence)
    "a 900 MB pax header in a 1 MB tar.gz": (archives.pax_header_bomb, "pax extended header"),
    "a quarter-megabyte pax header (CVE-2024-6232)": (archives.pax_header_quadratic, "pax extended header"),
    "a zip of 200,000 empty entries": (archives.zip_of_empty_entries, "more than 20000 files"),
    "a zip of 200,000 entries whose end record says 1": (
        lambda: archives.zip_of_empty_entries(200_000, declared=1),
        "more than 20000 files",
    ),
    "a newline in a member name": (
        lambda: archives.bundle_with_member("src/leave_portal/x\n../../../evil.py"),
        "control characters",
    ),
    "a manifest nested 100,000 arrays deep": (
        lambda: archives.bundle_with_manifest("a = " + "[" * 100_000 + "]" * 100_000 + "\n"),
        "nests arrays or tables too deeply",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_bundle_is_refused_within_a_second_and_bounded_memory(name):
    make, words = HOSTILE[name]
    data = make()
    assert len(data) < 32 * MiB  # what was uploaded: the reading must not cost much more
    message, elapsed, peak = measured(lambda: read_bundle(data))
    assert words in message, message
    assert message.endswith(".")
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s"
    assert peak < MEMORY_BOUND, f"{name}: {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_bundle_uploaded_through_the_page_gets_a_sentence_quickly_and_stores_nothing(
    client, release_user, name, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    make, words = HOSTILE[name]
    data = make()
    client.force_login(release_user)
    started = time.perf_counter()
    response = client.post(reverse("catalog:upload"), {"bundle": SimpleUploadedFile("bundle.tar.gz", data)})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert words in response.content.decode()
    assert elapsed < 1.0 + len(data) / (50 * MiB), f"{elapsed:.2f} s"  # plus the test client's encoding
    assert not ApplicationVersion.objects.exists()
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("*.*"))


def test_a_pax_header_under_the_limit_with_malformed_records_is_refused_in_linear_time():
    payload = b"0 " * 30_000  # 60 KB: under the limit, every record malformed
    header = archives._tar_header("././@PaxHeader", len(payload), b"x")
    data = archives._gzip([header, payload, b"\0" * (-len(payload) % 512), b"\0" * 1024])
    message, elapsed, peak = measured(lambda: read_bundle(data))
    assert message == "The tar.gz archive is damaged: a pax extended header has a malformed record."
    assert elapsed < 0.1 and peak < MEMORY_BOUND


def test_pax_paths_and_gnu_long_names_are_read_like_tarfile_reads_them():
    long_path = "src/leave_portal/" + "deep/" * 30 + "module.py"
    files = dict(archives.example_files("leave_portal", "1.0.0"))
    files[long_path] = b"VALUE = 1\n"
    for fmt in ("pax", "gnu"):
        import io
        import tarfile

        buffer = io.BytesIO()
        with tarfile.open(
            fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT if fmt == "pax" else tarfile.GNU_FORMAT
        ) as archive:
            for path, data in files.items():
                info = tarfile.TarInfo(path)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        bundle = read_bundle(buffer.getvalue())
        assert bundle.files[long_path] == b"VALUE = 1\n"
        assert bundle.manifest.name == "leave_portal"


def test_a_manifest_of_an_unexpected_shape_is_refused_with_a_sentence():
    manifest = archives.manifest_with_schema("leave_portal").replace(
        'indexes = [{ name = "leave_balance_employee_year_key"',
        'indexes = ["x", { name = "leave_balance_employee_year_key"',
    )
    with pytest.raises(BundleRefused, match="unexpected shape"):
        read_bundle(archives.bundle_with_manifest(manifest))


def test_an_application_cannot_declare_the_schema_of_another(db, admin_user, settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    catalog.register_bundle(data=example_bundle("hr_core", "1.0.0"), actor=Actor.person(admin_user))
    hostile = archives.bundle_with_manifest(archives.manifest_with_schema("hr_core"))
    with pytest.raises(BundleRefused) as refused:
        catalog.register_bundle(data=hostile, actor=Actor.person(admin_user))
    assert refused.value.message == (
        "Schema 'hr_core' belongs to the application hr_core: each application declares a schema of its own."
    )
    assert not Application.objects.filter(name="leave_portal").exists()
    # Its own schema is fine, and a new version of the owner keeps it.
    catalog.register_bundle(data=example_bundle("leave_portal", "1.0.0"), actor=Actor.person(admin_user))
    catalog.register_bundle(data=example_bundle("hr_core", "1.1.0"), actor=Actor.person(admin_user))
