"""The audit trail: one function writes it, inside the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from core.actors import Actor
from core.audit_masking import mask_text, mask_value
from core.models import AuditEvent

SECRET_MARK = "(changed, not shown)"


def record(
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_key: str | uuid.UUID = "",
    object_label: str = "",
    environment_key: uuid.UUID | None = None,
    changes: dict[str, Any] | None = None,
    message: str = "",
) -> AuditEvent:
    # URLs lose their path, query and credentials here, whoever calls: rows are shown to viewers.
    return AuditEvent.objects.create(
        actor=actor.user,
        actor_name=actor.name[:150],
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
