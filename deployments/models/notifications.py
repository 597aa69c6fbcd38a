"""Who hears about which plan events, and how each notification went."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from deployments.models.plans import DeploymentPlan
from environments.models import Environment


class NotificationEvent(models.TextChoices):
    PREPARED = "prepared", "Prepared"
    FINISHED_SUCCESSFUL = "finished_successful", "Finished successful"
    FINISHED_WITH_WARNINGS = "finished_with_warnings", "Finished with warnings"
    FINISHED_WITH_ERRORS = "finished_with_errors", "Finished with errors"
    FAILED = "failed", "Failed (needs intervention)"
    ABORTED = "aborted", "Aborted"
    EXPIRING = "expiring", "Prepared plan about to expire"
    APPROVAL_NEEDED = "approval_needed", "Approval needed"
    APPROVED = "approved", "Approved (all approvals in)"
    REJECTED = "rejected", "Rejected"
    DRIFTED = "drifted", "A front-end runs other versions than recorded"


class NotificationKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class NotificationRule(models.Model):
    """Who hears about which plan events on one environment: an email address list or a webhook URL."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="notification_rules")
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    target = models.CharField(max_length=500, help_text="Email addresses (comma separated) or the webhook URL.")
    events = ArrayField(models.CharField(max_length=30, choices=NotificationEvent.choices), default=list)
    # The webhook's HMAC key, encrypted at rest (lifetime.encryption); never shown again once saved.
    secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["kind", "target", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.target} on {self.environment.name}"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


_DELIVERY_CSS = {
    DeliveryStatus.DELIVERED: "successful",
    DeliveryStatus.FAILED: "errors",
    DeliveryStatus.RETRYING: "warnings",
}


class NotificationDelivery(models.Model):
    """One notification of one plan event to one rule's target, and how sending it went."""

    rule = models.ForeignKey(NotificationRule, on_delete=models.CASCADE, related_name="deliveries")
    plan = models.ForeignKey(DeploymentPlan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=30, choices=NotificationEvent.choices)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The beat task warns about an expiring prepared plan once, however often it runs.
            models.UniqueConstraint(
                fields=["rule", "plan", "event"], condition=models.Q(event="expiring"), name="expiry_warned_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} of plan {self.plan_id} to {self.rule.target}: {self.status}"

    @property
    def css(self) -> str:
        return _DELIVERY_CSS.get(self.status, "")
