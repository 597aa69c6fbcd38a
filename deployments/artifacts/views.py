"""Artifacts for front-end agents: a binary streamed by digest to the bearer of the agent token.

Nobody else may read them, not even signed-in users: a binary is the application's code.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from deployments.artifacts import store as artifacts

logger = logging.getLogger("lifetime.agents")


def _client(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "?")


def _refuse(request: HttpRequest, status: int, why: str, sha256: str) -> HttpResponse:
    # Never log the token that was presented, only that one was and from where.
    logger.warning(
        "artifact download refused (%s): %s from %s", status, why, _client(request), extra={"sha256": sha256}
    )
    response = HttpResponse(f"{why}\n", status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="lifetime-agents"'
    return response


@require_GET
def artifact_download(request: HttpRequest, sha256: str) -> HttpResponse:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return _refuse(request, 401, f"no agent token for artifact {sha256[:12]}", sha256)
    if not hmac.compare_digest(presented.strip().encode(), str(settings.AGENT_TOKEN).encode()):
        return _refuse(request, 403, f"wrong agent token for artifact {sha256[:12]}", sha256)
    if not artifacts.DIGEST_RE.match(sha256):
        return HttpResponse("not a sha256 digest\n", status=404, content_type="text/plain")
    try:
        size = artifacts.size_of(sha256)
        blob = artifacts.open_blob(sha256)
    except artifacts.ArtifactMissing:
        logger.warning("artifact %s requested by %s is not in the store", sha256, _client(request))
        return HttpResponse(f"artifact {sha256} is not in the store\n", status=404, content_type="text/plain")
    try:
        # The first chunk is read before answering: a small blob that fails its digest gets a plain
        # refusal rather than a stream cut short.
        first = blob.read(artifacts.CHUNK)
    except artifacts.ArtifactCorrupt as exc:
        blob.close()
        return HttpResponse(f"{exc}\n", status=500, content_type="text/plain")
    response = StreamingHttpResponse(stream_verified(first, blob), content_type="application/octet-stream")
    # The length is announced: a blob whose digest fails at its end is cut short before its last
    # bytes (artifacts.VerifiedBlob), so the agent sees a short, mismatching download, never a whole one.
    response["Content-Length"] = str(size)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-SHA256"] = sha256
    return response


def stream_verified(first: bytes, blob: artifacts.VerifiedBlob) -> Iterator[bytes]:
    # A blob that fails its digest raises ArtifactCorrupt (logged by the store) before its last
    # bytes: the server then drops the connection, short of the announced length.
    with blob:
        if first:
            yield first
        while chunk := blob.read(artifacts.CHUNK):
            yield chunk
