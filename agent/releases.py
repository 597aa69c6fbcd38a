"""What a front-end holds on disk, and the only code that changes it.

Layout under a front-end's releases root::

    releases/<application>/<release>/          an unpacked binary (release = <version>-<sha256[:12]>)
    releases/<application>/<release>/.lifetime-sha256   digest of the archive it came from
    releases/<application>/current -> <release>          what runs (a relative symlink)
    .switches/<switch id>.json                  journal of a switch, so that a redelivered switch or a
                                                revert knows what the links pointed to before
    .reload                                     touched after every switch and revert

Plain functions on paths, no Celery and no Django: the agent's tasks call them, tests call them
directly.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

MANIFEST = "lifetime-release.json"
DIGEST_MARK = ".lifetime-sha256"
CURRENT = "current"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,127}$")
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class ReleaseRefused(Exception):
    """The front-end refuses an archive, a release or a switch; ``message`` is a sentence for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def release_name(version: str, sha256: str) -> str:
    """The folder of a release: the version for people, the digest so two builds of a version never mix."""
    if not DIGEST_RE.match(sha256):
        raise ReleaseRefused(f"{sha256!r} is not a sha256 digest")
    name = f"{version}-{sha256[:12]}"
    if not NAME_RE.match(name):
        raise ReleaseRefused(f"version {version!r} cannot name a release folder")
    return name


def check_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name or "") or name in (CURRENT, ".", ".."):
        raise ReleaseRefused(f"{kind} name {name!r} is not allowed")
    return name


def application_dir(root: Path, application: str) -> Path:
    return Path(root) / "releases" / check_name("application", application)


# --- locking --------------------------------------------------------------------------------


@contextlib.contextmanager
def front_end_lock(root: Path) -> Iterator[None]:
    """One change at a time on a front-end, even if someone runs the agent with more than one process."""
    Path(root).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(root) / ".lifetime.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- unpacking --------------------------------------------------------------------------------


def _safe_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ReleaseRefused(f"the archive holds an absolute path: {name!r}")
    if ".." in path.parts or "\\" in name:
        raise ReleaseRefused(f"the archive holds a path that leaves its folder: {name!r}")
    return path


def unpack_archive(archive: Path, target: Path, *, max_bytes: int, max_members: int = 20000) -> dict[str, Any]:
    """Unpack a tar.gz binary into the empty folder ``target``, refusing anything that could escape it.

    Only regular files and folders are accepted: no links (a link can point anywhere and a later
    member can write through it), no devices, no FIFOs. The uncompressed size is counted while
    reading, so an archive bomb stops at ``max_bytes`` whatever its headers claim.
    Returns the release manifest.
    """
    total = 0
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > max_members:
                    raise ReleaseRefused(f"the archive holds more than {max_members} entries")
                rel = _safe_member_path(member.name)
                if rel.parts in ((), (".",)):
                    continue
                if member.issym() or member.islnk():
                    raise ReleaseRefused(f"the archive holds a link: {member.name!r}")
                if not (member.isfile() or member.isdir()):
                    raise ReleaseRefused(f"the archive holds a device or special file: {member.name!r}")
                dest = target.joinpath(*rel.parts)
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                total += member.size
                if total > max_bytes:
                    raise ReleaseRefused(f"the archive unpacks to more than {max_bytes} bytes")
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                written = _copy_limited(source, dest, limit=member.size)
                if written != member.size:
                    raise ReleaseRefused(f"the archive entry {member.name!r} is truncated")
                # Never keep set-uid bits or write rights for others from an archive.
                os.chmod(dest, 0o755 if member.mode & 0o111 else 0o644)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise ReleaseRefused(f"the archive is not a readable tar.gz: {exc}") from None
    manifest_path = target / MANIFEST
    if not manifest_path.is_file():
        raise ReleaseRefused(f"the archive has no {MANIFEST} at its root")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReleaseRefused(f"{MANIFEST} is not valid JSON: {exc}") from None
    for key in ("application", "version", "wsgi"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise ReleaseRefused(f"{MANIFEST} lacks {key!r}")
    return manifest


def _copy_limited(source: BinaryIO, dest: Path, *, limit: int) -> int:
    written = 0
    with open(dest, "wb") as out:
        while chunk := source.read(min(CHUNK, limit - written + 1)):
            written += len(chunk)
            if written > limit:
                break
            out.write(chunk)
    return written


def present_digest(root: Path, application: str, release: str) -> str | None:
    try:
        return (application_dir(root, application) / release / DIGEST_MARK).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def install_release(
    *,
    root: Path,
    application: str,
    version: str,
    sha256: str,
    archive: Path,
    max_bytes: int,
) -> dict[str, Any]:
    """Unpack a verified archive beside the running release; rename into place only when complete."""
    release = release_name(version, sha256)
    app_dir = application_dir(root, application)
    app_dir.mkdir(parents=True, exist_ok=True)
    final = app_dir / release
    staging = Path(tempfile.mkdtemp(dir=app_dir, prefix=".unpack-"))
    try:
        manifest = unpack_archive(archive, staging, max_bytes=max_bytes)
        if manifest["application"] != application:
            raise ReleaseRefused(f"the archive is the application {manifest['application']!r}, not {application!r}")
        if manifest["version"] != version:
            raise ReleaseRefused(f"the archive is version {manifest['version']!r}, not {version!r}")
        (staging / DIGEST_MARK).write_text(sha256 + "\n")
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, final)
        except OSError:
            # Someone installed the same release meanwhile (a redelivered upload): keep theirs.
            if present_digest(root, application, release) != sha256:
                raise
            shutil.rmtree(staging, ignore_errors=True)
        fsync_dir(app_dir)
        return {"application": application, "release": release, "manifest": manifest}
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- links --------------------------------------------------------------------------------


def current_release(root: Path, application: str) -> str | None:
    try:
        return os.readlink(application_dir(root, application) / CURRENT)
    except (FileNotFoundError, NotADirectoryError):
        return None


def point_current(root: Path, application: str, release: str | None) -> None:
    """Make ``current`` point at ``release`` with one rename(2): a reader sees the old or the new
    link, never none. ``None`` removes the link (the application was not deployed before)."""
    app_dir = application_dir(root, application)
    link = app_dir / CURRENT
    if release is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        fsync_dir(app_dir)
        return
    check_name("release", release)
    temp = app_dir / f"{CURRENT}.tmp-{secrets.token_hex(6)}"
    os.symlink(release, temp)
    try:
        os.replace(temp, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(app_dir)


def touch_reload(root: Path) -> None:
    reload_file = Path(root) / ".reload"
    reload_file.touch()
    os.utime(reload_file)


def _journal_path(root: Path, switch_id: str) -> Path:
    return Path(root) / ".switches" / f"{check_name('switch', switch_id)}.json"


def _write_journal(root: Path, switch_id: str, data: dict[str, Any]) -> None:
    path = _journal_path(root, switch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(f".tmp-{secrets.token_hex(4)}")
    temp.write_text(json.dumps(data, sort_keys=True))
    os.replace(temp, path)


def read_journal(root: Path, switch_id: str) -> dict[str, Any] | None:
    try:
        return json.loads(_journal_path(root, switch_id).read_text())
    except FileNotFoundError:
        return None


def switch_links(*, root: Path, switch_id: str, links: Mapping[str, str | None]) -> dict[str, Any]:
    """Point each application's ``current`` at its new release; return what they pointed to before.

    Every release is checked present before the first link moves. The journal is written before
    any link moves, so that a redelivered switch returns the first ``before`` (not the new links)
    and a revert sent after a timeout still knows what to put back. A switch that was reverted
    before it ran (the console gave up on this front-end) refuses to run.
    """
    journal = read_journal(root, switch_id)
    if journal is not None and journal.get("state") == "reverted":
        raise ReleaseRefused(f"switch {switch_id} was already reverted on this front-end")
    for application, release in links.items():
        # ``None`` undeploys: the application's link goes away.
        if release is not None and present_digest(root, application, release) is None:
            raise ReleaseRefused(f"release {release} of {application} is not uploaded to this front-end")
    if journal is None:
        journal = {
            "state": "switching",
            "before": {app: current_release(root, app) for app in links},
            "after": dict(links),
            "at": time.time(),
        }
        _write_journal(root, switch_id, journal)
    before: dict[str, str | None] = journal["before"]
    done: list[str] = []
    try:
        for application, release in links.items():
            point_current(root, application, release)
            done.append(application)
    except BaseException:
        for application in done:
            point_current(root, application, before.get(application))
        journal["state"] = "reverted"
        _write_journal(root, switch_id, journal)
        raise
    journal["state"] = "switched"
    _write_journal(root, switch_id, journal)
    touch_reload(root)
    return {"before": before, "after": dict(links)}


def revert_links(*, root: Path, switch_id: str, before: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Put back what a switch replaced. Idempotent; with no journal (the switch never ran here), leave a
    tombstone so that the switch, if it arrives late, refuses to run."""
    journal = read_journal(root, switch_id)
    if journal is None:
        _write_journal(
            root, switch_id, {"state": "reverted", "before": dict(before or {}), "after": {}, "at": time.time()}
        )
        return {"restored": {}, "switched": False}
    if journal.get("state") == "reverted":
        return {"restored": {}, "switched": False, "already_reverted": True}
    restored: dict[str, str | None] = {}
    for application, release in journal["before"].items():
        point_current(root, application, release)
        restored[application] = release
    journal["state"] = "reverted"
    _write_journal(root, switch_id, journal)
    touch_reload(root)
    return {"restored": restored, "switched": True}


# --- report and clean-up ------------------------------------------------------------------


def _releases_of(app_dir: Path) -> list[Path]:
    """Installed releases of an application, oldest first (by install time)."""
    found = []
    for entry in app_dir.iterdir():
        if entry.name.startswith(".") or entry.name.startswith(CURRENT) or entry.is_symlink():
            continue
        if entry.is_dir() and (entry / DIGEST_MARK).is_file():
            found.append(entry)
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def applications(root: Path) -> list[str]:
    base = Path(root) / "releases"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and NAME_RE.match(p.name))


def report(root: Path) -> dict[str, Any]:
    apps: dict[str, Any] = {}
    for application in applications(root):
        app_dir = application_dir(root, application)
        apps[application] = {
            "current": current_release(root, application),
            "previous": _previous_release(root, application),
            "releases": [p.name for p in _releases_of(app_dir)],
        }
    usage = shutil.disk_usage(root) if Path(root).exists() else None
    return {
        "applications": apps,
        "disk_free_bytes": usage.free if usage else None,
    }


def _previous_release(root: Path, application: str) -> str | None:
    """The release that ran before the current one, from the newest switch journal that moved it."""
    journals = Path(root) / ".switches"
    if not journals.is_dir():
        return None
    current = current_release(root, application)
    newest: tuple[float, str | None] = (-1.0, None)
    for entry in journals.glob("*.json"):
        try:
            data = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if data.get("state") != "switched" or data.get("after", {}).get(application) != current:
            continue
        before = data.get("before", {}).get(application)
        if before and before != current and data.get("at", 0) > newest[0]:
            newest = (data.get("at", 0), before)
    return newest[1]


def cleanup(root: Path, *, keep: int) -> dict[str, list[str]]:
    """Keep the ``keep`` newest releases of each application, and always the current and previous ones."""
    removed: dict[str, list[str]] = {}
    keep = max(keep, 2)
    for application in applications(root):
        app_dir = application_dir(root, application)
        protected = {current_release(root, application), _previous_release(root, application)}
        releases = _releases_of(app_dir)
        newest = {p.name for p in releases[-keep:]}
        for release in releases:
            if release.name in protected or release.name in newest:
                continue
            # Rename first so a half-deleted folder is never taken for a release.
            doomed = app_dir / f".removing-{release.name}-{secrets.token_hex(4)}"
            os.rename(release, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            removed.setdefault(application, []).append(release.name)
        for leftover in app_dir.glob(".unpack-*"):
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
    journals = Path(root) / ".switches"
    if journals.is_dir():
        # Journals only matter while a switch may still be redelivered or reverted.
        for entry in journals.glob("*.json"):
            if time.time() - entry.stat().st_mtime > 7 * 24 * 3600:
                entry.unlink(missing_ok=True)
    return removed
