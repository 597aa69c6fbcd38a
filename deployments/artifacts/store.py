"""Content-addressed storage of bundles, compiled binaries and mobile packages.

A blob lives at ``ARTIFACT_ROOT/<sha256[:2]>/<sha256>``; it is written to a temporary file in the
same folder and renamed into place, so a reader never sees half a blob and two writers of the same
content agree.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

CHUNK = 1024 * 1024
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class ArtifactMissing(Exception):
    pass


def root() -> Path:
    return Path(settings.ARTIFACT_ROOT)


def path_for(sha256: str) -> Path:
    if not DIGEST_RE.match(sha256):
        raise ValueError(f"not a sha256 digest: {sha256!r}")
    return root() / sha256[:2] / sha256


def exists(sha256: str) -> bool:
    return path_for(sha256).is_file()


def put_stream(stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[str, int]:
    """Store what ``stream`` yields; return (sha256, size). Raises ValueError past ``max_bytes``."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=base, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as tmp:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise ValueError(f"larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            os.fsync(tmp.fileno())
        sha256 = digest.hexdigest()
        final = path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_name, final)
        return sha256, size
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def put_bytes(data: bytes) -> tuple[str, int]:
    import io

    return put_stream(io.BytesIO(data))


def open_blob(sha256: str) -> BinaryIO:
    path = path_for(sha256)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ArtifactMissing(f"artifact {sha256} is not in the store") from None


def iter_blob(sha256: str) -> Iterator[bytes]:
    with open_blob(sha256) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def verify(sha256: str) -> bool:
    digest = hashlib.sha256()
    for chunk in iter_blob(sha256):
        digest.update(chunk)
    return digest.hexdigest() == sha256
