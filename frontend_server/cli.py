"""``lifetime-frontend-server``: the front-end server under gunicorn (``pip install ./frontend_server``;
``python -m frontend_server``).

    lifetime-frontend-server [--config FILE] [--bind 0.0.0.0:8101]

Settings come from the environment, or from a file of ``NAME=value`` lines (``--config`` or
``LIFETIME_FRONTEND_CONFIG``; the agent's file serves too). A variable set in the environment wins.

| variable | meaning | default |
|---|---|---|
| ``LIFETIME_RELEASES_ROOT`` (or ``AGENT_RELEASES_ROOT``) | the front-end's releases folder | required |
| ``FRONTEND_BIND`` | address and port | ``127.0.0.1:8101`` |
| ``FRONTEND_WORKERS``, ``FRONTEND_THREADS`` | gunicorn processes and threads each | 2, 8 |
| ``AGENT_TOKEN`` / ``AGENT_TOKEN_FILE`` | lets the agent read the health details | — |
| ``LIFETIME_APP_DB_DSN_FILE`` | the applications' database connection, handed to them | — |
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from frontend_server import make_app

        return make_app()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lifetime-frontend-server", description="Serves every deployed application.")
    parser.add_argument("--config", default=os.environ.get("LIFETIME_FRONTEND_CONFIG"))
    parser.add_argument("--bind", help="address:port (default: $FRONTEND_BIND or 127.0.0.1:8101)")
    args = parser.parse_args(argv)
    if args.config:
        if not Path(args.config).is_file():
            print(f"lifetime-frontend-server: the configuration file {args.config} does not exist", file=sys.stderr)
            return 2
        for name, value in dotenv_values(args.config).items():
            if value is not None:
                os.environ.setdefault(name, value)
    root = os.environ.get("LIFETIME_RELEASES_ROOT") or os.environ.get("AGENT_RELEASES_ROOT")
    if not root or not os.path.isabs(root):
        print("lifetime-frontend-server: LIFETIME_RELEASES_ROOT must be the absolute releases folder", file=sys.stderr)
        return 2
    os.environ["LIFETIME_RELEASES_ROOT"] = root
    _Server(
        {
            "bind": args.bind or os.environ.get("FRONTEND_BIND", "127.0.0.1:8101"),
            "workers": int(os.environ.get("FRONTEND_WORKERS", "2")),
            "threads": int(os.environ.get("FRONTEND_THREADS", "8")),
            "worker_class": "gthread",
            "graceful_timeout": 10,
        }
    ).run()
    return 0
