"""Production hardening comes from the environment: `check --deploy` passes with the README's settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def test_check_deploy_refuses_the_published_development_keys():
    result = _manage("check", "--deploy", env={**PRODUCTION, "AGENT_TOKEN": "dev-agent-token"})
    assert result.returncode != 0
    assert "lifetime.E001" in result.stderr and "AGENT_TOKEN is the published development value" in result.stderr


def test_check_deploy_warns_of_a_broker_on_the_network_without_a_password():
    result = _manage("check", "--deploy", env={**PRODUCTION, "REDIS_URL": "redis://redis.internal:6379/0"})
    assert "lifetime.W001" in result.stderr and "without a password" in result.stderr
    authenticated = {**PRODUCTION, "REDIS_URL": "rediss://console:s3cret@redis.internal:6380/0"}
    assert "lifetime.W001" not in _manage("check", "--deploy", env=authenticated).stderr


def _gunicorn(bind: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "lifetime.wsgi", "-c", "lifetime/gunicorn_conf.py", "-b", bind],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_the_published_development_keys_are_served_on_loopback_only():
    from tests.processes import free_port

    dev = {
        k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "AGENT_TOKEN"))
    }
    dev.update(LIFETIME_DEV="true", WEB_WORKERS="1")
    refused = _gunicorn(f"0.0.0.0:{free_port()}", dev)
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode != 0
    assert "Refusing to listen on 0.0.0.0" in output and "SECRET_KEY, FIELD_ENCRYPTION_KEY, AGENT_TOKEN" in output

    own = {
        **dev,
        "SECRET_KEY": "s" * 50,
        "FIELD_ENCRYPTION_KEY": PRODUCTION["FIELD_ENCRYPTION_KEY"],
        "AGENT_TOKEN": "t" * 40,
    }
    for bind, env in ((f"127.0.0.1:{free_port()}", dev), (f"0.0.0.0:{free_port()}", own)):
        server = _gunicorn(bind, env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{bind.rsplit(':', 1)[1]}/login/", timeout=5) as page:
                        assert page.status == 200
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):  # still starting
                    time.sleep(0.2)
            else:
                raise AssertionError(
                    f"gunicorn on {bind} did not serve: {server.stdout.read() if server.poll() is not None else ''}"
                )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
