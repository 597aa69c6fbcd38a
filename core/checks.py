"""System checks of the console's own settings (``manage.py check --deploy``)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def published_secrets(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The development keys are in the repository: anyone may read them."""
    names = getattr(settings, "PUBLISHED_SECRETS_IN_USE", [])
    if not names:
        return []
    return [
        Error(
            f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} the published development value.",
            hint="Generate secrets of this installation (scripts/up.sh keeps its own under .data/secrets/).",
            id="lifetime.E001",
        )
    ]


@register(Tags.security, deploy=True)
def broker_authentication(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Whoever can write to the broker can queue anything: agents refuse what the console did not
    sign, but the broker itself should not be open either (docs/agents.md)."""
    url = urllib.parse.urlsplit(settings.REDIS_URL)
    if url.scheme == "unix" or url.password:
        return []
    try:
        if ipaddress.ip_address(url.hostname or "").is_loopback:
            return []
    except ValueError:
        if url.hostname == "localhost":
            return []
    return [
        Warning(
            f"REDIS_URL reaches {url.hostname} without a password: anyone who reaches that Redis can queue tasks.",
            hint="Give the console and each environment's front-end hosts Redis ACL users, and use rediss:// where "
            "the network is shared (docs/agents.md, Broker authentication).",
            id="lifetime.W001",
        )
    ]
