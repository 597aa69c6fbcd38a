"""The audit trail: one function writes it, inside the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from core.actors import Actor
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
    return AuditEvent.objects.create(
        actor=actor.user,
        actor_name=actor.name,
        action=action,
        object_type=object_type,
        object_key=str(object_key),
        object_label=object_label[:200],
        environment_key=environment_key,
        changes=changes or {},
        message=message,
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
