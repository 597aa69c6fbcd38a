"""Content-addressed storage of bundles, compiled binaries and mobile packages.

A blob is named by its sha256: ``<sha256[:2]>/<sha256>`` in the artifacts storage, which is
Django's storage ``STORAGES["artifacts"]``: the local folder ``ARTIFACT_ROOT`` by default, an
S3-compatible object store (django-storages) when ``ARTIFACT_S3_BUCKET`` is set, so that web
processes and stage workers on several hosts share one store and no folder.

Every read checks the digest: ``open_blob`` hands out a reader that hashes what it reads and raises
``ArtifactCorrupt`` instead of the last bytes when they do not add up to the name. A reader that
streams a blob to someone (an agent, a browser) therefore never delivers a whole corrupted blob.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages

CHUNK = 1024 * 1024
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
# A blob being stored is spooled in memory up to this size, then on disk.
SPOOL_IN_MEMORY_BYTES = 8 * 1024 * 1024

logger = logging.getLogger("lifetime.artifacts")


class ArtifactMissing(Exception):
    pass


class ArtifactCorrupt(Exception):
    """What the store holds under a digest is not what has that digest."""


class LocalArtifactStorage(FileSystemStorage):
    """The local folder ``ARTIFACT_ROOT``, read from the settings at each use (tests move it).

    A blob is written to a temporary file beside its final name, fsynced, and renamed into place:
    a reader never sees half a blob, and two writers of the same content agree (same name, same bytes).
    """

    @property
    def base_location(self) -> str:  # type: ignore[override]
        return str(self._location or settings.ARTIFACT_ROOT)

    @property
    def location(self) -> str:  # type: ignore[override]
        return os.path.abspath(self.base_location)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        # Content-addressed: the same name always holds the same bytes, so storing it again is fine.
        return name

    def _save(self, name: str, content: File) -> str:
        final = Path(self.path(name))
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in content.chunks(CHUNK):
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return name


def storage() -> Storage:
    return storages["artifacts"]


def name_for(sha256: str) -> str:
    if not DIGEST_RE.match(sha256 or ""):
        raise ValueError(f"not a sha256 digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}"


def root() -> Path:
    """The local folder of the default storage (tests and the local store only)."""
    return Path(settings.ARTIFACT_ROOT)


def path_for(sha256: str) -> Path:
    """Where the local storage keeps a blob (tests reach into it to tamper with one)."""
    return Path(storage().path(name_for(sha256)))


def exists(sha256: str) -> bool:
    return storage().exists(name_for(sha256))


def size_of(sha256: str) -> int:
    try:
        return storage().size(name_for(sha256))
    except (FileNotFoundError, OSError) as exc:
        raise ArtifactMissing(f"artifact {sha256} is not in the store") from exc
    except Exception as exc:  # an object store's client raises its own kinds for a missing object
        if _is_missing(exc):
            raise ArtifactMissing(f"artifact {sha256} is not in the store") from None
        raise


def put_stream(stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[str, int]:
    """Store what ``stream`` yields; return (sha256, size). Raises ValueError past ``max_bytes``.

    The digest is known only at the end, so the blob is spooled first (memory, then a temporary
    file) and stored under its name once complete; a blob already there is not stored again.
    """
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise ValueError(f"larger than the limit of {max_bytes} bytes")
            digest.update(chunk)
            spool.write(chunk)
        sha256 = digest.hexdigest()
        if not exists(sha256):
            spool.seek(0)
            storage().save(name_for(sha256), File(spool, name=sha256))
    return sha256, size


def put_bytes(data: bytes) -> tuple[str, int]:
    sha256 = hashlib.sha256(data).hexdigest()
    if not exists(sha256):
        storage().save(name_for(sha256), ContentFile(data, name=sha256))
    return sha256, len(data)


class VerifiedBlob(io.RawIOBase):
    """A blob read from the store, checked against its digest as it is read.

    It reads ahead of what it hands out, so the last bytes of a blob are handed out only once the
    digest of the whole blob matched; otherwise ``read`` raises ``ArtifactCorrupt`` instead.
    """

    def __init__(self, raw: IO[bytes], sha256: str) -> None:
        super().__init__()
        self._raw = raw
        self.sha256 = sha256
        self._digest = hashlib.sha256()
        self._pending = bytearray()
        self._eof = False
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def _fill(self, wanted: int) -> None:
        # Keep at least one byte more than is handed out until the end is reached and checked.
        while not self._eof and (wanted < 0 or len(self._pending) <= wanted):
            chunk = self._raw.read(CHUNK)
            if not chunk:
                self._eof = True
                got = self._digest.hexdigest()
                if got != self.sha256:
                    logger.error(
                        "artifact %s in the store does not match its digest (it holds %s bytes hashing to %s)",
                        self.sha256,
                        self.bytes_read,
                        got,
                    )
                    raise ArtifactCorrupt(
                        f"artifact {self.sha256[:12]} in the store does not match its digest: "
                        "it was damaged or replaced after it was stored"
                    )
                break
            self._digest.update(chunk)
            self.bytes_read += len(chunk)
            self._pending += chunk

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None or size < 0 else size
        self._fill(wanted)
        if wanted < 0:
            out = bytes(self._pending)
            self._pending.clear()
        else:
            out = bytes(self._pending[:wanted])
            del self._pending[:wanted]
        return out

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def open_blob(sha256: str) -> VerifiedBlob:
    name = name_for(sha256)
    try:
        raw = storage().open(name, "rb")
    except FileNotFoundError:
        raise ArtifactMissing(f"artifact {sha256} is not in the store") from None
    except Exception as exc:
        if _is_missing(exc):
            raise ArtifactMissing(f"artifact {sha256} is not in the store") from None
        raise
    return VerifiedBlob(raw, sha256)


def iter_blob(sha256: str) -> Iterator[bytes]:
    with open_blob(sha256) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def verify(sha256: str) -> bool:
    try:
        for _ in iter_blob(sha256):
            pass
    except ArtifactCorrupt:
        return False
    return True


def _is_missing(exc: Exception) -> bool:
    """An object store's "no such key" (botocore's ClientError 404/NoSuchKey), without importing it."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NotFound"}
    return False
