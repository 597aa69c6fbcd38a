"""Real processes for end-to-end tests: front-end agents (Celery workers) and front-end servers
(gunicorn), started as subprocesses on this machine, each with its own queue, folder and port.

Plain helpers: fixtures in the test packages wrap them and always stop what they started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
LOG_DIR = REPO / "tests" / "artifacts" / "processes"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    # Never the settings a development install keeps for manage.py (.data/lifetime.env).
    env["LIFETIME_ENV_FILE"] = ""
    env.update(extra)
    return env


class Process:
    """A subprocess with its output in a log file, in its own process group so that stopping it
    stops its children too (a prefork Celery worker, gunicorn's workers)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.args = args
        self.env = env
        self.log_path = LOG_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            self.args, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM (a Celery worker finishes its task, gunicorn its requests), then SIGKILL."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


class Agent(Process):
    """``celery -A agent worker`` on one front-end queue, with the agent's environment only: its key
    (the console signs its tasks with it) and its own releases folder."""

    def __init__(
        self,
        *,
        queue: str,
        redis_url: str,
        console_url: str,
        token: str,
        key: str,
        releases_root: Path | str,
        pool: str = "solo",
        extra_env=None,
    ) -> None:
        self.queue = queue
        self.key = key
        self.releases_root = Path(releases_root)
        env = _base_env(
            {
                "REDIS_URL": redis_url,
                "CONSOLE_BASE_URL": console_url,
                "AGENT_TOKEN": token,
                "AGENT_KEY": key,
                "AGENT_RELEASES_ROOT": str(releases_root),
                "AGENT_DOWNLOAD_TIMEOUT": "10",
                **(extra_env or {}),
            }
        )
        env.pop("LIFETIME_DEV", None)
        args = [
            str(BIN / "celery"),
            "-A",
            "agent",
            "worker",
            "-Q",
            queue,
            "-n",
            f"agent-{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ]
        args += ["--pool=solo"] if pool == "solo" else ["-c", "1"]
        super().__init__(f"agent-{queue}", args, env)

    def wait_ready(self, celery_app, *, timeout_s: float = 60.0) -> None:
        """Until the agent answers a ping on its queue (so it consumes it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"agent {self.queue} exited:\n{self.log()[-3000:]}")
            result = signed_send(celery_app, "agent.ping", queue=self.queue, key=self.key, expires_in_s=2)
            try:
                if result.get(timeout=2, interval=0.05).get("ok"):
                    return
            except Exception:  # noqa: BLE001 - not answering yet is the normal case here
                pass
        raise RuntimeError(f"agent {self.queue} did not answer a ping in {timeout_s} s:\n{self.log()[-3000:]}")


def signed_send(celery_app, task: str, *, queue: str, key: str, kwargs: dict | None = None, expires_in_s: float = 10):
    """Send an agent task signed with ``key``, as the console does (environments.agents.send)."""
    from agent import signing

    task_id = str(uuid.uuid4())
    auth = signing.sign(
        key=key,
        task=task,
        task_id=task_id,
        queue=queue,
        kwargs=kwargs or {},
        expires_at=int(time.time() + max(expires_in_s, signing.MIN_VALIDITY_S)),
    )
    return celery_app.send_task(
        task, kwargs=kwargs or {}, queue=queue, expires=expires_in_s, task_id=task_id, headers={signing.HEADER: auth}
    )


class FrontEndServer(Process):
    """The front-end WSGI server under gunicorn, on a free port, serving one releases folder."""

    def __init__(self, *, releases_root: Path, port: int | None = None, threads: int = 8) -> None:
        self.releases_root = Path(releases_root)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--graceful-timeout",
            "5",
            f"frontend_server:make_app({str(self.releases_root)!r})",
        ]
        super().__init__(f"frontend-{self.port}", args, _base_env({}))

    def wait_ready(self, *, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"front-end server on {self.port} exited:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_lifetime/releases", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"front-end server on {self.port} did not start:\n{self.log()[-3000:]}")

    def get(self, path: str, *, timeout_s: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout_s) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def stop_all(processes: Iterable[Process]) -> None:
    """Stop every process, all at once (SIGTERM to each, then wait), whatever failed before."""
    processes = list(processes)
    for process in processes:
        if process.running:
            assert process.popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGTERM)
    for process in processes:
        process.stop()


def console_env(settings, *, console_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a console process (stage worker, beat) that must see the test database,
    the test's artifact store and the same Redis as the test."""
    db = settings.DATABASES["default"]
    auth = (db.get("USER") or "postgres") + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = _base_env(
        {
            "DATABASE_URL": f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
            "CONSOLE_BASE_URL": console_url,
            "AGENT_TOKEN": settings.AGENT_TOKEN,
            "LIFETIME_DEV": "true",
            "OUTBOUND_ALLOWED_NETWORKS": ",".join(settings.OUTBOUND_ALLOWED_NETWORKS),
            **(extra or {}),
        }
    )
    return env


class StageWorker(Process):
    """``celery -A lifetime worker -Q stages,notifications``: runs Prepare and Continue, and sends
    notifications."""

    def __init__(self, env: dict[str, str], *, name: str = "stages") -> None:
        args = [
            str(BIN / "celery"),
            "-A",
            "lifetime",
            "worker",
            "-Q",
            "stages,notifications",
            "-c",
            "1",
            "-n",
            f"{name}-{time.monotonic_ns()}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ]
        super().__init__(name, args, env)

    def wait_ready(self, *, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"stage worker exited:\n{self.log()[-3000:]}")
            if " ready." in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"stage worker did not start in {timeout_s} s:\n{self.log()[-3000:]}")


class Beat(Process):
    """``celery -A lifetime beat``: the reaper and the expiry of prepared plans."""

    def __init__(self, env: dict[str, str], *, schedule_dir: Path) -> None:
        args = [str(BIN / "celery"), "-A", "lifetime", "beat", "-l", "info", "--max-interval", "1"]
        super().__init__("beat", args, env)


class RedisServer(Process):
    """A private ``redis-server`` on a free port, keeping its data in ``folder`` the way the
    project's own Redis must (append-only file, never evicting): a test may flush it, stop it and
    start it again without touching anybody else's Redis. ``keeps_data=False``: a Redis as installed
    without the project's settings, which forgets everything when it restarts."""

    def __init__(self, *, folder: Path | str, port: int | None = None, keeps_data: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if keeps_data else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
        ]
        super().__init__(f"redis-{self.port}", args, _base_env({}))

    def wait_ready(self, *, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"redis-server on {self.port} exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start:\n{self.log()[-3000:]}")

    def restart(self) -> None:
        """Stopped (SIGTERM: it writes its append-only file and exits) and started again on the
        same port and folder, as a host's restart of the service does."""
        self.stop(timeout_s=10)
        self.start()
        self.wait_ready()
