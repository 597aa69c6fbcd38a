"""A small WSGI front-end server: serves each deployed application from its ``current`` link.

    gunicorn -k gthread --threads 8 -b 127.0.0.1:8101 'frontend_server:make_app("/srv/lifetime/fe1")'
    LIFETIME_RELEASES_ROOT=/srv/lifetime/fe1 gunicorn 'frontend_server:make_app()'

Every request resolves ``releases/<app>/current`` again (one readlink), so a switch is picked up
without a restart; the application object of each resolved release folder is loaded once and kept,
so a request that started on a release finishes on it even if the link moves meanwhile.
Each request to an application carries its settings for this environment in
``environ["lifetime.settings"]`` (a dict, empty when none): read from ``releases/<app>/current-settings``,
the document the console's deployment put there beside the release and switched with it.
Also serves ``/_health`` (200 when every current release loads) and ``/_lifetime/releases`` (JSON).
What runs and what fails (versions, digests, folders, errors) is told only to the agent (its
``Authorization: Bearer <AGENT_TOKEN>``) and to this host (loopback): anyone else gets the health
status code alone, and a 403 for ``/_lifetime/``.

No Django here: it runs on a front-end host beside the agent.
"""

from __future__ import annotations

import hmac
import importlib
import ipaddress
import json
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MANIFEST = "lifetime-release.json"
CURRENT = "current"
CURRENT_SETTINGS = "current-settings"
# Old releases stay loaded for requests still running on them, and for a quick revert.
RELEASES_KEPT_PER_APPLICATION = 3

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LoadedRelease:
    def __init__(self, folder: Path, manifest: dict[str, Any], wsgi: WsgiApp) -> None:
        self.folder = folder
        self.manifest = manifest
        self.wsgi = wsgi
        self.url_path = "/" + (manifest.get("url_path") or manifest["application"]).strip("/")


class ReleaseLoadError(Exception):
    pass


class FrontEndServer:
    def __init__(self, releases_root: Path, *, status_token: str = "") -> None:
        self.root = Path(releases_root)
        self.status_token = status_token
        self._loaded: dict[str, OrderedDict[str, LoadedRelease]] = {}
        self._lock = threading.Lock()
        # Settings documents by file (named by their digest: a file never changes once written).
        self._settings: dict[str, dict[str, Any]] = {}

    # --- what runs ------------------------------------------------------------------------

    def current_folders(self) -> dict[str, Path]:
        """Application name -> the release folder its ``current`` link points to, right now."""
        base = self.root / "releases"
        found: dict[str, Path] = {}
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                target = os.readlink(os.path.join(entry.path, CURRENT))
            except (FileNotFoundError, NotADirectoryError):
                continue
            found[entry.name] = Path(entry.path) / target
        return found

    def settings_of(self, application: str) -> dict[str, Any]:
        """The settings the current deployment gave ``application`` here ({} when none)."""
        app_dir = self.root / "releases" / application
        try:
            target = os.readlink(app_dir / CURRENT_SETTINGS)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        key = str(app_dir / target)
        cached = self._settings.get(key)
        if cached is None:
            try:
                cached = dict(json.loads((app_dir / target).read_text()).get("settings") or {})
            except (OSError, ValueError):
                return {}
            self._settings[key] = cached
        return dict(cached)

    def release(self, application: str, folder: Path) -> LoadedRelease:
        key = str(folder)
        cached = self._loaded.get(application, {}).get(key)
        if cached is not None:
            return cached
        with self._lock:
            per_app = self._loaded.setdefault(application, OrderedDict())
            cached = per_app.get(key)
            if cached is None:
                cached = self._load(folder)
                per_app[key] = cached
                while len(per_app) > RELEASES_KEPT_PER_APPLICATION:
                    # Requests still running on an evicted release hold their own reference to it.
                    per_app.popitem(last=False)
            return cached

    def _load(self, folder: Path) -> LoadedRelease:
        """Import a release's WSGI entry point with its folder first on sys.path.

        Two releases of one application have packages of the same name, so the application's
        modules are taken out of sys.modules after the import: each release keeps its own module
        objects through the references its code holds. (An application must therefore import its
        modules at load time, not lazily inside a request.)
        """
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            module_name, _, attr = manifest["wsgi"].partition(":")
        except (OSError, ValueError, KeyError) as exc:
            raise ReleaseLoadError(f"{folder.name}: unreadable {MANIFEST}: {exc}") from exc
        # Compiled binaries keep their code under a sub-folder named by the manifest (``lib``).
        code = folder / manifest.get("path", "") if manifest.get("path") else folder
        if not code.resolve().is_relative_to(folder.resolve()):
            raise ReleaseLoadError(f"{folder.name}: path {manifest.get('path')!r} leaves the release")
        top_levels = {p.name.split(".")[0] for p in code.iterdir() if not p.name.startswith(".")}
        sys.path.insert(0, str(code))
        try:
            _forget_modules(top_levels)
            importlib.invalidate_caches()
            module = importlib.import_module(module_name)
            wsgi = getattr(module, attr or "application")
        except Exception as exc:
            raise ReleaseLoadError(f"{folder.name}: cannot load {manifest['wsgi']}: {exc!r}") from exc
        finally:
            sys.path.remove(str(code))
            _forget_modules(top_levels)
        return LoadedRelease(folder, manifest, wsgi)

    # --- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/_health":
            return self._health(start_response, details=self.may_see_status(environ))
        if path == "/_lifetime" or path.startswith("/_lifetime/"):
            if not self.may_see_status(environ):
                return _text(start_response, "403 Forbidden", "Only this host and its agent may see this.\n")
            if path == "/_lifetime/releases":
                return _json(start_response, "200 OK", self.describe())
            return _text(start_response, "404 Not Found", f"No status at {path}\n")
        best: tuple[LoadedRelease, str, str] | None = None
        for application, folder in self.current_folders().items():
            try:
                loaded = self.release(application, folder)
            except ReleaseLoadError:
                continue
            prefix = loaded.url_path.rstrip("/")
            if (path == prefix or path.startswith(prefix + "/") or prefix == "") and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (loaded, prefix, application)
        if best is None:
            return _text(start_response, "404 Not Found", f"No application answers {path}\n")
        loaded, prefix, application = best
        environ = dict(environ)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + prefix
        environ["PATH_INFO"] = path[len(prefix) :] or "/"
        environ["lifetime.release"] = loaded.folder.name
        environ["lifetime.settings"] = self.settings_of(application)
        return loaded.wsgi(environ, start_response)

    def may_see_status(self, environ: dict[str, Any]) -> bool:
        """The agent (its token) or a process of this host (loopback)."""
        given = environ.get("HTTP_AUTHORIZATION") or ""
        if self.status_token and hmac.compare_digest(given.encode(), f"Bearer {self.status_token}".encode()):
            return True
        try:
            return ipaddress.ip_address((environ.get("REMOTE_ADDR") or "").split("%")[0]).is_loopback
        except ValueError:
            return False

    def _health(self, start_response: Callable[..., Any], *, details: bool) -> Iterable[bytes]:
        problems = []
        for application, folder in self.current_folders().items():
            try:
                self.release(application, folder)
            except ReleaseLoadError as exc:
                problems.append(f"{application}: {exc}")
        if problems:
            body: dict[str, Any] = {"status": "failing"}
            if details:
                body["problems"] = problems
            return _json(start_response, "503 Service Unavailable", body)
        return _json(start_response, "200 OK", {"status": "ok"})

    def describe(self) -> dict[str, Any]:
        running: dict[str, Any] = {}
        for application, folder in sorted(self.current_folders().items()):
            try:
                manifest = json.loads((folder / MANIFEST).read_text())
            except (OSError, ValueError):
                manifest = {}
            running[application] = {
                "release": folder.name,
                "version": manifest.get("version"),
                "url_path": manifest.get("url_path"),
            }
        return {"releases_root": str(self.root), "applications": running}


def _forget_modules(top_levels: set[str]) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in top_levels:
            del sys.modules[name]


def _json(start_response: Callable[..., Any], status: str, data: Any) -> list[bytes]:
    body = json.dumps(data, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _text(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def make_app(releases_root: str | None = None) -> FrontEndServer:
    """The WSGI application for gunicorn; the root comes from the argument or LIFETIME_RELEASES_ROOT."""
    root = releases_root or os.environ.get("LIFETIME_RELEASES_ROOT")
    if not root:
        raise RuntimeError("give the releases folder: make_app('/path') or LIFETIME_RELEASES_ROOT")
    # The applications' database connection is a secret: it comes from a file only the front-end
    # host can read, never from a command line, and is handed to the applications as
    # LIFETIME_APP_DB_DSN.
    dsn_file = os.environ.get("LIFETIME_APP_DB_DSN_FILE")
    if dsn_file:
        os.environ["LIFETIME_APP_DB_DSN"] = Path(dsn_file).read_text().strip()
    # The agent's token, as the agent reads it (AGENT_TOKEN or AGENT_TOKEN_FILE): the agent shows it
    # when it checks health. Without it, only this host sees the status.
    token_file = os.environ.get("AGENT_TOKEN_FILE")
    token = Path(token_file).read_text().strip() if token_file else os.environ.get("AGENT_TOKEN", "")
    return FrontEndServer(Path(root), status_token=token)
