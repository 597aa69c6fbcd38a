"""Fetching an artifact from the console over HTTP with the agent token, checking its digest."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1024 * 1024


class DownloadFailed(Exception):
    """The artifact could not be fetched intact; ``message`` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def fetch_artifact(
    *, console_url: str, token: str, sha256: str, into: Path, max_bytes: int, timeout_s: float
) -> tuple[Path, int]:
    """Download ``artifacts/<sha256>`` into a new file in the folder ``into``; return (path, size).

    The digest is computed while writing, so a tampered or truncated download never leaves a file
    behind. ``into`` should be on the same file system as the releases, so the unpack stays local.
    """
    url = f"{console_url.rstrip('/')}/artifacts/{sha256}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    fd, name = tempfile.mkstemp(dir=into, prefix=".download-")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(request, timeout=timeout_s)
            except urllib.error.HTTPError as exc:
                reason = {401: "no agent token", 403: "the agent token was refused", 404: "no such artifact"}
                said = reason.get(exc.code) or _first_line(exc) or exc.reason
                raise DownloadFailed(
                    f"the console answered HTTP {exc.code} for artifact {sha256[:12]} ({said})"
                ) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                why = getattr(exc, "reason", exc)
                raise DownloadFailed(f"cannot reach the console at {console_url}: {why}") from None
            with response:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (TimeoutError, ConnectionError) as exc:
                        raise DownloadFailed(f"the download of {sha256[:12]} broke off: {exc}") from None
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadFailed(f"artifact {sha256[:12]} is larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != sha256:
            raise DownloadFailed(f"digest mismatch: expected {sha256[:12]}, downloaded {got[:12]} ({size} bytes)")
        return path, size
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _first_line(error: urllib.error.HTTPError) -> str:
    """The first line of an error's plain-text body (the console says why there), kept short."""
    try:
        if not (error.headers.get("Content-Type") or "").startswith("text/plain"):
            return ""
        return error.read(500).decode("utf-8", "replace").strip().splitlines()[0][:300]
    except (OSError, ValueError, IndexError):
        return ""
