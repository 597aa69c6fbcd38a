"""The agent's settings, from its process environment only (it has no access to the console's)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


class ConfigurationError(Exception):
    pass


def _read(name: str, default: str | None = None) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    raw = _read(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    broker_url: str
    console_url: str
    token: str
    key: str
    releases_root: Path
    max_archive_bytes: int
    max_unpacked_bytes: int
    download_timeout_s: int


def load() -> AgentConfig:
    broker_url = _read("REDIS_URL", "redis://127.0.0.1:6379/0") or ""
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError("REDIS_URL must be a redis:// URL")
    dev = (_read("LIFETIME_DEV", "") or "").lower() in {"1", "true", "yes", "on"}
    # Same variable names as the console, so one environment file can serve both on a laptop.
    token = _read("AGENT_TOKEN") or ("dev-agent-token" if dev else "")
    if not token:
        raise ConfigurationError("AGENT_TOKEN is not set: the agent needs it to download artifacts")
    # The key the console signs this front-end's tasks with (shown once when the front-end is
    # created, or when a new key is generated on its page).
    key = _read("AGENT_KEY") or ""
    if len(key) < 32:
        raise ConfigurationError(
            "AGENT_KEY is not set (or shorter than 32 characters): give the front-end's agent key, "
            "shown by the console when the front-end was created"
        )
    # The one folder this agent works in; a message naming another one is refused.
    raw_root = _read("AGENT_RELEASES_ROOT") or ""
    if not raw_root or not os.path.isabs(raw_root):
        raise ConfigurationError("AGENT_RELEASES_ROOT must be the absolute path of this front-end's releases folder")
    releases_root = Path(os.path.realpath(raw_root))
    console_url = (_read("CONSOLE_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
    if not console_url.startswith(("http://", "https://")):
        raise ConfigurationError("CONSOLE_BASE_URL must be an http(s):// URL")
    return AgentConfig(
        broker_url=broker_url,
        console_url=console_url,
        token=token,
        key=key,
        releases_root=releases_root,
        max_archive_bytes=_int("AGENT_MAX_ARCHIVE_BYTES", 512 * 1024 * 1024),
        max_unpacked_bytes=_int("AGENT_MAX_UNPACKED_BYTES", 2 * 1024 * 1024 * 1024),
        download_timeout_s=_int("AGENT_DOWNLOAD_TIMEOUT", 60),
    )
