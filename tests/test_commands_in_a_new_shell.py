"""Commands the README shows, run as in a new shell after `scripts/up.sh`: manage.py finds the
install's settings in the file up.sh writes (.data/lifetime.env), runs in the project's .venv
whoever starts it, and a variable set in the shell still wins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from core.models import ServiceAccount

ROOT = Path(__file__).resolve().parent.parent


def new_shell() -> dict[str, str]:
    """What a login shell has: no LIFETIME_*, no DATABASE_URL, no keys, no virtualenv."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def settings_file(tmp_path: Path, *, database: str) -> Path:
    db = settings.DATABASES["default"]
    (tmp_path / "secret-key").write_text("k" * 60)
    (tmp_path / "agent-token").write_text("a" * 40)
    (tmp_path / "field-key").write_text("ZGV2LW9ubHktZmllbGQta2V5LTAxMjM0NTY3ODlhYmM=")
    file = tmp_path / "lifetime.env"
    file.write_text(
        "\n".join(
            [
                "# as scripts/up.sh writes it",
                "LIFETIME_DEV=true",
                f"DATABASE_URL=postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database}",
                f"REDIS_URL={settings.REDIS_URL}",
                f"SECRET_KEY_FILE={tmp_path / 'secret-key'}",
                f"FIELD_ENCRYPTION_KEY_FILE={tmp_path / 'field-key'}",
                f"AGENT_TOKEN_FILE={tmp_path / 'agent-token'}",
                "",
            ]
        )
    )
    return file


@pytest.mark.django_db(transaction=True)
def test_create_service_account_works_in_a_new_shell_with_the_systems_python3(tmp_path, landscape):
    env = {
        **new_shell(),
        "LIFETIME_ENV_FILE": str(settings_file(tmp_path, database=settings.DATABASES["default"]["NAME"])),
    }
    python3 = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    made = subprocess.run(
        [python3, "manage.py", "create_service_account", "ci-pipeline", "--deploy-on", "Test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert len(token) >= 32 and "\n" not in token
    assert ServiceAccount.objects.filter(user__username="ci-pipeline").exists()


def test_a_variable_of_the_shell_wins_over_the_file(tmp_path):
    env = {
        **new_shell(),
        "LIFETIME_ENV_FILE": str(settings_file(tmp_path, database="lifetime_from_the_file")),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/lifetime_from_the_shell",
    }
    shown = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.DATABASES['default']['NAME'], settings.DEV)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1].split() == ["lifetime_from_the_shell", "True"]


def test_without_the_file_a_new_shell_is_told_what_is_missing(tmp_path):
    env = {**new_shell(), "LIFETIME_ENV_FILE": str(tmp_path / "absent.env")}
    refused = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "SECRET_KEY is not set" in refused.stderr
