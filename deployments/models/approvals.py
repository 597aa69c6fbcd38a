"""Approvals of a prepared plan: who said go (or no-go) to its Continue, and for which Prepare."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployments.models.plans import DeploymentPlan


class Decision(models.TextChoices):
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"


class Approval(models.Model):
    """One person's decision on one prepared attempt of a plan.

    ``prepared_at`` is the plan's ``prepared_at`` when the decision was taken: Prepare Again gives
    the plan a new one, so the decisions taken on the earlier attempt no longer count (they stay,
    as history). An approval may be withdrawn (``withdrawn_at``); a rejection stands until the plan
    is prepared again.
    """

    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    user_name = models.CharField(max_length=150)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    prepared_at = models.DateTimeField()
    at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # One standing decision per person and prepared attempt: a double click records one.
            models.UniqueConstraint(
                fields=["plan", "user", "prepared_at"],
                condition=models.Q(withdrawn_at__isnull=True),
                name="one_standing_decision_per_person",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.user_name}"

    @property
    def is_approval(self) -> bool:
        return self.decision == Decision.APPROVE
