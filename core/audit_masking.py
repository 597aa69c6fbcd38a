"""What an audit row may not show: the path, query and credentials of a URL.

Webhook URLs are often credentials themselves (a chat service's incoming-webhook URL is the only
secret it needs), connection strings carry passwords, and audit rows are shown to everyone with a
view right on the environment. A row keeps the scheme and the host, enough to tell which endpoint
was meant; the rest becomes "…".
"""

from __future__ import annotations

import re
from typing import Any

URL_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,20})://([^\s/?#'\"<>]+)([^\s'\"<>]*)")
MASK = "…"


def _mask_match(match: re.Match[str]) -> str:
    scheme, authority, rest = match.group(1), match.group(2), match.group(3)
    host = authority.rsplit("@", 1)[-1]
    had_credentials = "@" in authority
    masked = f"{scheme}://{MASK + '@' if had_credentials else ''}{host}"
    return masked + ("/" + MASK if rest.strip("/") else "")


def mask_text(text: str) -> str:
    return URL_RE.sub(_mask_match, text) if "://" in text else text


def mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    return value
