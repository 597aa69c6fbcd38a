"""Sending notifications, on their own queue so that a slow webhook never delays a stage."""

from __future__ import annotations

from celery import shared_task

from deployments.notifications import services


@shared_task(name=services.DELIVER_TASK, bind=True, acks_late=True, max_retries=None)
def deliver_notification(self, delivery_id: int) -> str:
    """Send one notification; on failure try again later with a doubling delay, up to MAX_ATTEMPTS in all."""
    last_attempt = self.request.retries + 1 >= services.MAX_ATTEMPTS
    try:
        services.deliver(delivery_id, last_attempt=last_attempt)
    except services.DeliveryFailed as exc:
        if last_attempt:
            return "failed"
        raise self.retry(countdown=services.retry_delay(self.request.retries), exc=exc) from None
    return "delivered"


@shared_task(name="deployments.tasks.warn_expiring_plans")
def warn_expiring_plans() -> int:
    return services.warn_expiring_plans()
