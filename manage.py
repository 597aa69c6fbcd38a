#!/usr/bin/env python3
"""Django's command line for the console.

Run by any Python, it runs in the project's ``.venv`` when there is one, and it reads the settings
that ``scripts/up.sh`` wrote to ``.data/lifetime.env`` (database, Redis, keys of this install),
so a new shell needs nothing exported. A variable set in the environment wins over the file;
``LIFETIME_ENV_FILE`` names another file (empty: none).
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def main() -> None:
    venv = BASE_DIR / ".venv"
    if (venv / "bin" / "python").exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(
            str(venv / "bin" / "python"), [str(venv / "bin" / "python"), str(BASE_DIR / "manage.py"), *sys.argv[1:]]
        )
    env_file = os.environ.get("LIFETIME_ENV_FILE", str(BASE_DIR / ".data" / "lifetime.env"))
    if env_file and Path(env_file).is_file():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifetime.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
