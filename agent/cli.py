"""``lifetime-agent``: the front-end agent's command (``pip install ./agent``; ``python -m agent``).

    lifetime-agent [--config FILE] run [--queue QUEUE]   consume this front-end's queue (the default)
    lifetime-agent [--config FILE] check                 say what is configured and what answers

Settings come from the environment, or from a file of ``NAME=value`` lines (``--config`` or
``LIFETIME_AGENT_CONFIG``; the same file can be a systemd ``EnvironmentFile``). A variable set in
the environment wins over the file. The variables are those of ``agent.config`` plus
``AGENT_QUEUE``, the front-end's queue as the console shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from dotenv import dotenv_values

from agent import config


def load_file(path: str) -> None:
    """Put the file's variables into the environment, under those already set."""
    file = Path(path)
    if not file.is_file():
        raise config.ConfigurationError(f"the configuration file {path} does not exist")
    for name, value in dotenv_values(file).items():
        if value is not None:
            os.environ.setdefault(name, value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifetime-agent", description="The LifeTime console's front-end agent.")
    parser.add_argument(
        "--config",
        default=os.environ.get("LIFETIME_AGENT_CONFIG"),
        help="file of NAME=value lines (default: $LIFETIME_AGENT_CONFIG); the environment wins over it",
    )
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="consume this front-end's queue (the default command)")
    run.add_argument("--queue", help="the front-end's queue (default: $AGENT_QUEUE)")
    run.add_argument("--loglevel", default=os.environ.get("AGENT_LOG_LEVEL", "info"))
    commands.add_parser("check", help="print the settings (never a secret) and check what they reach")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.config:
            load_file(args.config)
        settings = config.load()
    except config.ConfigurationError as exc:
        print(f"lifetime-agent: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        return check(settings)
    queue = getattr(args, "queue", None) or os.environ.get("AGENT_QUEUE", "")
    if not queue:
        print(
            "lifetime-agent: AGENT_QUEUE is not set: give the front-end's queue shown by the console", file=sys.stderr
        )
        return 2
    loglevel = getattr(args, "loglevel", None) or "info"
    from agent.celery import app

    # One task at a time in one process (--pool=solo): a switch is never interleaved with another
    # change on the same folder, and a supervisor sees one process to restart.
    app.worker_main(
        [
            "worker",
            "-Q",
            queue,
            "-n",
            f"agent-{queue}@%h",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            loglevel,
        ]
    )
    return 0


def check(settings: config.AgentConfig) -> int:
    problems: list[str] = []
    print(f"releases folder  {settings.releases_root}")
    print(f"console          {settings.console_url}")
    print(f"broker           {_without_password(settings.broker_url)}")
    print(f"queue            {os.environ.get('AGENT_QUEUE') or '(not set: AGENT_QUEUE)'}")
    print(f"agent token      set ({len(settings.token)} characters)")
    print(f"agent key        set ({len(settings.key)} characters)")
    try:
        settings.releases_root.mkdir(parents=True, exist_ok=True)
        probe = settings.releases_root / ".lifetime-agent-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        problems.append(f"the releases folder cannot be written: {exc.strerror or exc}")
    try:
        import redis

        redis.Redis.from_url(settings.broker_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker is reported the same way
        problems.append(f"the broker does not answer: {type(exc).__name__}")
    try:
        with urllib.request.urlopen(f"{settings.console_url}/health/live", timeout=5) as answer:
            if answer.status != 200:
                problems.append(f"the console answered HTTP {answer.status} at /health/live")
    except (urllib.error.URLError, OSError) as exc:
        problems.append(f"the console does not answer at {settings.console_url}: {getattr(exc, 'reason', exc)}")
    if not os.environ.get("AGENT_QUEUE"):
        problems.append("AGENT_QUEUE is not set")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':***' if user else '***'}@{host}"


if __name__ == "__main__":
    raise SystemExit(main())
