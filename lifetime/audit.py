"""The audit trail: one function writes it, inside the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from lifetime.audit_masking import mask_text, mask_value
from lifetime.models import AuditEvent

SECRET_MARK = "(changed, not shown)"


def record(
    *,
    actor: Any,
    action: str,
    object_type: str,
    object_key: str | uuid.UUID = "",
    object_label: str = "",
    environment_key: uuid.UUID | None = None,
    changes: dict[str, Any] | None = None,
    message: str = "",
) -> AuditEvent:
    user = actor if getattr(actor, "is_authenticated", False) else None
    name = getattr(actor, "username", "") or (actor if isinstance(actor, str) else "system")
    # URLs lose their path, query and credentials here, whoever calls: rows are shown to viewers.
    return AuditEvent.objects.create(
        actor=user,
        actor_name=str(name)[:150],
        action=action,
        object_type=object_type,
        object_key=str(object_key)[:64],
        object_label=mask_text(object_label)[:200],
        environment_key=environment_key,
        changes=mask_value(changes or {}),
        message=mask_text(message),
    )


def diff(before: dict[str, Any], after: dict[str, Any], *, secret_fields: frozenset[str] = frozenset()) -> dict:
    """``{field: [old, new]}`` for the fields that changed; secrets only say that they changed."""
    changed: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changed[name] = SECRET_MARK if name in secret_fields else [_plain(old), _plain(new)]
    return changed


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
