"""Time-limited signed links to a version's content (its bundle), for LifeTime's
``GET /applications/{app}/versions/{ver}/content`` and the air-gapped flow that follows it.

The link is the credential: clients fetch it without the bearer scheme (the OutSystems client
sends its raw token in ``Authorization``, which is ignored here). It names the version, the
bundle's digest and the service account it was issued to, is signed with the console's secret
key, and stops working after ``CONTENT_LINK_SECONDS``, when the version is deleted, or when the
account is revoked or loses its last Deploy right. The bytes are read through the artifact store,
which checks their digest; the answer announces the digest in ``X-Content-SHA256``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from core.models import ServiceAccount
from deployments.api.errors import error_response
from deployments.artifacts import store as artifacts
from deployments.models import ApplicationVersion
from environments import access
from environments.models import AccessLevel

logger = logging.getLogger("lifetime.api")

SALT = "lifetime.api.version-content"


def may_download(user: object) -> bool:
    """A version's code goes to whoever may deploy somewhere, as for registering one."""
    return any(level >= AccessLevel.DEPLOY for level in access.levels_for(user).values())


def link_for(request: HttpRequest, version: ApplicationVersion, account: ServiceAccount) -> tuple[str, dt.datetime]:
    token = signing.TimestampSigner(salt=SALT).sign_object(
        {"v": str(version.key), "s": version.bundle_sha256, "a": str(account.key)}, compress=True
    )
    url = request.build_absolute_uri(reverse("lifetimeapi:download", args=[token]))
    return url, timezone.now() + dt.timedelta(seconds=settings.CONTENT_LINK_SECONDS)


def file_name(version: ApplicationVersion) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in version.application.name)
    return f"{safe}-{version.version}.oap"


@csrf_exempt
@require_safe
def download(request: HttpRequest, token: str) -> HttpResponse:
    try:
        claims = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=settings.CONTENT_LINK_SECONDS)
    except signing.SignatureExpired:
        return error_response(403, "This download link has expired: ask the API for a new one.")
    except signing.BadSignature:
        return error_response(403, "This is not a download link of this console.")
    if not isinstance(claims, dict) or not {"v", "s", "a"} <= set(claims):
        return error_response(403, "This is not a download link of this console.")
    account = ServiceAccount.objects.select_related("user").filter(key=claims["a"]).first()
    if account is None or account.revoked_at is not None or not account.user.is_active:
        return error_response(403, "The service account this link was issued to is revoked.")
    if not may_download(account.user):
        return error_response(403, "The service account this link was issued to may no longer deploy.")
    version = ApplicationVersion.objects.select_related("application").filter(key=claims["v"]).first()
    if version is None or version.bundle_sha256 != claims["s"]:
        return error_response(404, "The version this link points to is no longer in the catalog.")
    try:
        size = artifacts.size_of(version.bundle_sha256)
        blob = artifacts.open_blob(version.bundle_sha256)
    except artifacts.ArtifactMissing:
        logger.error("bundle %s of %s is missing from the artifact store", version.bundle_sha256, version)
        return error_response(404, "The version's package is missing from the artifact store.")
    try:
        # Read before answering: a small blob that fails its digest is a refusal, not a cut stream.
        first = blob.read(artifacts.CHUNK)
    except artifacts.ArtifactCorrupt:
        blob.close()
        return error_response(500, "The stored package does not match its digest: the console logged it.")
    response = StreamingHttpResponse(_stream(first, blob), content_type="application/octet-stream")
    response["Content-Length"] = str(size)
    response["Content-Disposition"] = f'attachment; filename="{file_name(version)}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-SHA256"] = version.bundle_sha256
    return response


def _stream(first: bytes, blob: artifacts.VerifiedBlob) -> Iterator[bytes]:
    with blob:
        if first:
            yield first
        while chunk := blob.read(artifacts.CHUNK):
            yield chunk
