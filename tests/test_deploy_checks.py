"""Production hardening comes from the environment: `check --deploy` passes with the README's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "production-secret-key-from-a-vault-0123456789",
    "FIELD_ENCRYPTION_KEY": "rZ3XWJvYkqgBqk2p9r7wQ0sJ8gN0b1c2d3e4f5g6h7E=",
    "AGENT_TOKEN": "agent-token-from-a-vault",
    "ALLOWED_HOSTS": "lifetime.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "BEHIND_TLS_PROXY": "true",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    dev_only = {"LIFETIME_DEV", "DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dev_only}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


def test_check_deploy_passes_with_the_documented_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_a_malformed_database_url_fails_loudly():
    result = _manage("check", env={**PRODUCTION, "DATABASE_URL": "mysql://root@localhost/x"})
    assert result.returncode != 0
    assert "DATABASE_URL must be a PostgreSQL URL" in result.stderr
