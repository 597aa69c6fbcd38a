from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Who did what, when. Never holds a secret value: only that it changed."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=80)
    object_type = models.CharField(max_length=60)
    object_key = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=200, blank=True)
    environment_key = models.UUIDField(null=True, blank=True, db_index=True)
    changes = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_key", "-at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.object_label}"

    def change_lines(self) -> list[tuple[str, str]]:
        lines = []
        for field, change in (self.changes or {}).items():
            if isinstance(change, list) and len(change) == 2:
                old, new = ("—" if v in (None, "", []) else v for v in change)
                lines.append((field, f"{old} → {new}"))
            else:
                lines.append((field, str(change)))
        return lines


class ServiceAccount(models.Model):
    """An API client: a user without a password, authenticated by a bearer token (stored hashed)."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account")
    description = models.CharField(max_length=200, blank=True)
    token_prefix = models.CharField(max_length=12, db_index=True)
    token_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.user.username
