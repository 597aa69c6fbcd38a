from __future__ import annotations

from typing import Any

from django.conf import settings

from environments.access import is_infra_admin


def console(request: Any) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "is_infra_admin": is_infra_admin(user) if user is not None else False,
        "sso_enabled": settings.SSO_ENABLED,
        "sso_label": settings.SSO_LABEL,
    }
