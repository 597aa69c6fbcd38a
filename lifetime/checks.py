"""System checks of the console's own settings (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register


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
