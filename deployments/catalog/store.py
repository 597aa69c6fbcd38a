"""A version's bundle read back from the artifact store, and the deterministic archives the
console writes (compiled binaries, tagged bundles): the same entries always give the same bytes."""

from __future__ import annotations

import gzip
import io
import tarfile

from deployments.artifacts import store as artifacts
from deployments.catalog.bundles import Bundle, read_bundle
from deployments.models import ApplicationVersion

FIXED_MTIME = 315532800  # 1980-01-01: the same bundle gives the same bytes


def bundle_of(version: ApplicationVersion) -> Bundle:
    """Read a registered version's bundle back from the artifact store."""
    with artifacts.open_blob(version.bundle_sha256) as handle:
        return read_bundle(handle.read())


def pack_deterministic_tar_gz(entries: dict[str, bytes]) -> bytes:
    """A tar.gz whose bytes depend only on ``entries``: sorted names, fixed times, modes and owners."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size = len(entries[name])
            info.mtime = FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(entries[name]))
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)
