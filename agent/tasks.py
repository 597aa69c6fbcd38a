"""The agent's tasks. Each takes everything it needs as arguments and returns a JSON-able dict.

Each runs only once ``agent.guard`` has checked the console's signature. The releases folder is
the agent's own (``AGENT_RELEASES_ROOT``): the console still says which folder it means
(``releases_root``), and the guard refuses a message that names another one.

A known failure (a refused archive, a digest mismatch, a console out of reach, a full disk, a
failed health check) returns ``{"ok": False, "error": "<sentence>"}``; the console names the
front-end when it reports it. Anything else is a bug and fails the task with its traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agent import guard, releases
from agent.celery import app, settings
from agent.download import DownloadFailed, fetch_artifact

logger = logging.getLogger("agent")


def _failure(message: str, **extra: Any) -> dict[str, Any]:
    logger.warning("refused: %s", message)
    return {"ok": False, "error": message, **extra}


def _os_sentence(exc: OSError, doing: str) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while {doing}"
    return f"{exc.strerror or exc.__class__.__name__} while {doing}"


@app.task(name="agent.ping")
def ping() -> dict[str, Any]:
    return {"ok": True, "hostname": socket.gethostname(), "pid": os.getpid(), "time": time.time()}


@app.task(name="agent.upload")
def upload(*, application: str, version: str, sha256: str, releases_root: str = "") -> dict[str, Any]:
    """Download a binary, check its digest, unpack it into releases/<application>/<release>/.

    Nothing that runs is touched: the release lands beside the current one, via a temporary folder
    renamed into place. A release already present with the same digest is not downloaded again.
    """
    started = time.monotonic()
    root = settings.releases_root
    try:
        release = releases.release_name(version, sha256)
        app_dir = releases.application_dir(root, application)
    except releases.ReleaseRefused as exc:
        return _failure(exc.message)
    result = {"application": application, "version": version, "release": release}
    if releases.present_digest(root, application, release) == sha256:
        return {"ok": True, **result, "downloaded": False, "bytes": 0, "seconds": time.monotonic() - started}
    archive: Path | None = None
    try:
        app_dir.mkdir(parents=True, exist_ok=True)
        archive, size = fetch_artifact(
            console_url=settings.console_url,
            token=settings.token,
            sha256=sha256,
            into=app_dir,
            max_bytes=settings.max_archive_bytes,
            timeout_s=settings.download_timeout_s,
        )
        with releases.front_end_lock(root):
            releases.install_release(
                root=root,
                application=application,
                version=version,
                sha256=sha256,
                archive=archive,
                max_bytes=settings.max_unpacked_bytes,
            )
    except DownloadFailed as exc:
        return _failure(exc.message, **result)
    except releases.ReleaseRefused as exc:
        return _failure(f"archive {sha256[:12]} refused: {exc.message}", **result)
    except OSError as exc:
        return _failure(_os_sentence(exc, f"storing {release} of {application}"), **result)
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
    return {"ok": True, **result, "downloaded": True, "bytes": size, "seconds": time.monotonic() - started}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A health URL answers itself: a redirect is an answer other than 200, never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def check_health(url: str, *, timeout_s: float) -> dict[str, Any]:
    """GET ``url`` until it answers 200 or ``timeout_s`` passes (a server may take a moment to reload).

    The agent token goes along, so that the front-end server tells its agent what fails."""
    started = time.monotonic()
    deadline = started + timeout_s
    last = "no answer"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {settings.token}"})
    while True:
        try:
            with _opener.open(request, timeout=max(0.2, min(2.0, deadline - time.monotonic()))) as response:
                if response.status == 200:
                    return {"ok": True, "status": 200, "seconds": time.monotonic() - started}
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            return {"ok": False, "status": last, "seconds": time.monotonic() - started}
        time.sleep(0.05)


@app.task(name="agent.switch")
def switch(
    *,
    switch_id: str,
    links: dict[str, str],
    health_url: str = "",
    health_timeout_s: float = 10.0,
    releases_root: str = "",
) -> dict[str, Any]:
    """Point each application's ``current`` at its new release (one rename(2) each), touch the reload
    file, check the health URL. On a failed health check this front-end puts its links back itself
    and says so; the console then reverts the others."""
    started = time.monotonic()
    root = settings.releases_root
    try:
        with releases.front_end_lock(root):
            moved = releases.switch_links(root=root, switch_id=switch_id, links=links)
    except releases.ReleaseRefused as exc:
        return _failure(exc.message)
    except OSError as exc:
        return _failure(_os_sentence(exc, "switching the current links"))
    switched_s = time.monotonic() - started
    result: dict[str, Any] = {"ok": True, **moved, "switch_seconds": switched_s}
    if health_url:
        health = check_health(health_url, timeout_s=health_timeout_s)
        result["health"] = health
        if not health["ok"]:
            with releases.front_end_lock(root):
                releases.revert_links(root=root, switch_id=switch_id)
            result.update(ok=False, reverted=True, error=f"health check {health_url} failed ({health['status']})")
            logger.warning("switch %s reverted: %s", switch_id, result["error"])
    result["seconds"] = time.monotonic() - started
    return result


@app.task(name="agent.revert")
def revert(*, switch_id: str, before: dict[str, str | None] | None = None, releases_root: str = "") -> dict[str, Any]:
    started = time.monotonic()
    root = settings.releases_root
    try:
        with releases.front_end_lock(root):
            restored = releases.revert_links(root=root, switch_id=switch_id, before=before)
    except releases.ReleaseRefused as exc:
        return _failure(exc.message)
    except OSError as exc:
        return _failure(_os_sentence(exc, "putting the current links back"))
    return {"ok": True, **restored, "seconds": time.monotonic() - started}


@app.task(name="agent.report")
def report(*, releases_root: str = "") -> dict[str, Any]:
    root = settings.releases_root
    if not root.is_dir():
        return _failure(f"the releases folder {root} does not exist")
    ledger = guard.Ledger(root)
    return {
        "ok": True,
        "hostname": socket.gethostname(),
        "time": time.time(),
        **releases.report(root),
        # What this agent refused (unsigned, forged, replayed or misdirected messages), latest last.
        "refused": ledger.refusals()[-10:],
        "refused_total": ledger.refused_total(),
    }


@app.task(name="agent.cleanup")
def cleanup(*, keep: int = 3, releases_root: str = "") -> dict[str, Any]:
    root = settings.releases_root
    if not root.is_dir():
        return _failure(f"the releases folder {root} does not exist")
    with releases.front_end_lock(root):
        removed = releases.cleanup(root, keep=keep)
    free = shutil.disk_usage(root).free
    return {"ok": True, "removed": removed, "disk_free_bytes": free}
