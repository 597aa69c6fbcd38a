"""The artifact endpoint: a binary by digest, to the bearer of the agent token and nobody else."""

from __future__ import annotations

import logging

from django.urls import reverse

from deployments.artifacts import store as artifacts


def test_agent_token_downloads_the_artifact_by_digest(client, artifact_store, settings):
    sha256, size = artifacts.put_bytes(b"compiled binary")
    response = client.get(
        reverse("artifact_download", args=[sha256]), HTTP_AUTHORIZATION=f"Bearer {settings.AGENT_TOKEN}"
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"compiled binary"
    assert response["X-Content-SHA256"] == sha256


def test_download_without_token_is_refused_with_401_even_for_a_signed_in_user(
    client, artifact_store, admin_user, caplog
):
    sha256, _ = artifacts.put_bytes(b"compiled binary")
    client.force_login(admin_user)
    with caplog.at_level(logging.WARNING, logger="lifetime.agents"):
        response = client.get(reverse("artifact_download", args=[sha256]))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert any("no agent token" in r.getMessage() for r in caplog.records)


def test_download_with_a_forged_token_is_refused_with_403_and_logged_without_the_token(
    client, artifact_store, caplog, settings
):
    sha256, _ = artifacts.put_bytes(b"compiled binary")
    with caplog.at_level(logging.WARNING, logger="lifetime.agents"):
        response = client.get(reverse("artifact_download", args=[sha256]), HTTP_AUTHORIZATION="Bearer forged-token-123")
    assert response.status_code == 403
    assert b"compiled binary" not in response.content
    lines = [r.getMessage() for r in caplog.records]
    assert any("wrong agent token" in line and sha256[:12] in line for line in lines)
    assert not any("forged-token-123" in line or settings.AGENT_TOKEN in line for line in lines)


def test_unknown_digest_is_404_for_the_agent(client, artifact_store, settings):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {settings.AGENT_TOKEN}"}
    assert client.get(reverse("artifact_download", args=["0" * 64]), **auth).status_code == 404
    assert client.get("/artifacts/..%2F..%2Fetc%2Fpasswd", **auth).status_code == 404
    assert client.get(reverse("artifact_download", args=["not-a-digest"]), **auth).status_code == 404
