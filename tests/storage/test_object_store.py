"""Artifacts on an S3-compatible object store (a real S3 server, moto's server mode): bundles,
binaries and packages land in the bucket, nothing in the local folder, and every read checks the
digest."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.urls import reverse

from core.actors import Actor
from deployments.artifacts import store as artifacts
from deployments.catalog import services as catalog
from deployments.steps import ListLog
from deployments.steps.compile import compile_version
from examples.build import FORMATS, bundle_files, pack

pytestmark = pytest.mark.django_db


def objects(s3_artifacts) -> dict[str, bytes]:
    client = s3_artifacts["server"].client()
    listed = client.list_objects_v2(Bucket=s3_artifacts["bucket"]).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=s3_artifacts["bucket"], Key=item["Key"])["Body"].read() for item in listed
    }


def test_a_registered_bundle_and_its_compiled_binary_live_in_the_bucket_only(s3_artifacts, admin_user, settings):
    data = pack(bundle_files("leave_portal", "1.0.0", modules=2), FORMATS["leave_portal"])
    version = catalog.register_bundle(data=data, actor=Actor.person(admin_user))
    compiled = compile_version(version=version, log=ListLog())

    stored = objects(s3_artifacts)
    bundle_key = f"artifacts/{version.bundle_sha256[:2]}/{version.bundle_sha256}"
    binary_key = f"artifacts/{compiled.binary_sha256[:2]}/{compiled.binary_sha256}"
    assert set(stored) == {bundle_key, binary_key}
    assert stored[bundle_key] == data
    assert hashlib.sha256(stored[binary_key]).hexdigest() == compiled.binary_sha256
    assert not settings.ARTIFACT_ROOT.exists(), "nothing may be written to the local folder"
    # Compiled once: a second Prepare finds the binary in the bucket.
    assert compile_version(version=version, log=ListLog()).cached


def test_the_same_content_is_stored_once_under_its_digest(s3_artifacts):
    first = artifacts.put_bytes(b"a compiled binary")
    again = artifacts.put_stream(io.BytesIO(b"a compiled binary"))
    assert first == again == (hashlib.sha256(b"a compiled binary").hexdigest(), 17)
    assert len(objects(s3_artifacts)) == 1
    assert artifacts.exists(first[0]) and artifacts.size_of(first[0]) == 17
    assert artifacts.open_blob(first[0]).read() == b"a compiled binary"


def test_a_blob_replaced_in_the_bucket_is_refused_on_every_read(s3_artifacts, client, settings):
    sha256, _ = artifacts.put_bytes(b"what was compiled" * 1000)
    s3_artifacts["server"].client().put_object(
        Bucket=s3_artifacts["bucket"], Key=f"artifacts/{sha256[:2]}/{sha256}", Body=b"something else" * 1000
    )

    with pytest.raises(artifacts.ArtifactCorrupt, match="does not match its digest"):
        artifacts.open_blob(sha256).read()
    assert not artifacts.verify(sha256)
    response = client.get(
        reverse("artifact_download", args=[sha256]), HTTP_AUTHORIZATION=f"Bearer {settings.AGENT_TOKEN}"
    )
    assert response.status_code == 500
    assert b"does not match its digest" in response.content
    assert b"something else" not in response.content


def test_a_blob_missing_from_the_bucket_is_missing_not_an_error(s3_artifacts, client, settings):
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not artifacts.exists(absent)
    with pytest.raises(artifacts.ArtifactMissing):
        artifacts.open_blob(absent)
    with pytest.raises(artifacts.ArtifactMissing):
        artifacts.size_of(absent)
    response = client.get(
        reverse("artifact_download", args=[absent]), HTTP_AUTHORIZATION=f"Bearer {settings.AGENT_TOKEN}"
    )
    assert response.status_code == 404


def test_the_agent_download_streams_the_blob_from_the_bucket_with_its_length(s3_artifacts, client, settings):
    data = bytes(range(256)) * 8192  # two chunks of the stream
    sha256, size = artifacts.put_bytes(data)
    response = client.get(
        reverse("artifact_download", args=[sha256]), HTTP_AUTHORIZATION=f"Bearer {settings.AGENT_TOKEN}"
    )
    assert response.status_code == 200
    assert response["Content-Length"] == str(size)
    assert b"".join(response.streaming_content) == data
