"""Fetching an artifact from the console over HTTP with the agent token, checking its digest."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from typing import Any

CHUNK = 1024 * 1024


class DownloadFailed(Exception):
    """The artifact could not be fetched intact; ``message`` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def open_artifact(*, console_url: str, token: str, sha256: str, timeout_s: float) -> Any:
    """The console's answer for ``artifacts/<sha256>``, to be read as a stream; DownloadFailed otherwise."""
    url = f"{console_url.rstrip('/')}/artifacts/{sha256}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        reason = {401: "no agent token", 403: "the agent token was refused", 404: "no such artifact"}
        said = reason.get(exc.code) or _first_line(exc) or exc.reason
        raise DownloadFailed(f"the console answered HTTP {exc.code} for artifact {sha256[:12]} ({said})") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        why = getattr(exc, "reason", exc)
        raise DownloadFailed(f"cannot reach the console at {console_url}: {why}") from None


class VerifiedStream:
    """Reads an artifact's download, hashing and counting every byte, so that it can be unpacked
    while it arrives. Nothing read from it may be used before ``verify()`` returned: it reads what
    is left and raises DownloadFailed unless the whole download has the expected digest."""

    def __init__(self, response: Any, *, sha256: str, max_bytes: int) -> None:
        self.response = response
        self.sha256 = sha256
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self.response.read(size if size is not None and size >= 0 else CHUNK)
        except (TimeoutError, ConnectionError) as exc:
            raise DownloadFailed(f"the download of {self.sha256[:12]} broke off: {exc}") from None
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise DownloadFailed(f"artifact {self.sha256[:12]} is larger than the limit of {self.max_bytes} bytes")
        self._digest.update(chunk)
        return chunk

    def verify(self) -> int:
        """The download's size once every byte is read and the digest matched."""
        while self.read(CHUNK):
            pass
        got = self._digest.hexdigest()
        if got != self.sha256:
            raise DownloadFailed(
                f"digest mismatch: expected {self.sha256[:12]}, downloaded {got[:12]} ({self.size} bytes)"
            )
        return self.size


def _first_line(error: urllib.error.HTTPError) -> str:
    """The first line of an error's plain-text body (the console says why there), kept short."""
    try:
        if not (error.headers.get("Content-Type") or "").startswith("text/plain"):
            return ""
        return error.read(500).decode("utf-8", "replace").strip().splitlines()[0][:300]
    except (OSError, ValueError, IndexError):
        return ""
