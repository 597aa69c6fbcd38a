"""Celery tasks: thin. Each takes an id and calls one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="deployments.tasks.run_stage", bind=True, acks_late=True, reject_on_worker_lost=True)
def run_stage(self, stage_id: int) -> str | None:
    from deployments.stages.runner import run

    return run(stage_id, task_id=self.request.id or "", worker=self.request.hostname or "")


@shared_task(name="deployments.tasks.reap_stale_stages")
def reap_stale_stages() -> list[int]:
    from deployments.stages.reaper import reap_stale_stages as reap

    return reap()


@shared_task(name="deployments.tasks.expire_prepared_plans")
def expire_prepared_plans() -> list[str]:
    from deployments.plans import expire_prepared_plans as expire

    return [str(plan.key) for plan in expire()]


@shared_task(name="deployments.tasks.deliver_notification", bind=True, acks_late=True, max_retries=None)
def deliver_notification(self, delivery_id: int) -> str:
    """Send one notification; on failure try again later with a doubling delay, up to MAX_ATTEMPTS in all."""
    from deployments import notifications

    last_attempt = self.request.retries + 1 >= notifications.MAX_ATTEMPTS
    try:
        notifications.deliver(delivery_id, last_attempt=last_attempt)
    except notifications.DeliveryFailed as exc:
        if last_attempt:
            return "failed"
        raise self.retry(countdown=notifications.retry_delay(self.request.retries), exc=exc) from None
    return "delivered"


@shared_task(name="deployments.tasks.warn_expiring_plans")
def warn_expiring_plans() -> int:
    from deployments.notifications import warn_expiring_plans as warn

    return warn()


@shared_task(name="deployments.tasks.run_scheduled_continues")
def run_scheduled_continues() -> list[str]:
    from deployments.plans import run_scheduled_continues as run

    return [str(plan.key) for plan in run()]


@shared_task(name="deployments.tasks.drop_prepared_indexes", acks_late=True)
def drop_prepared_indexes(plan_id: int, why: str) -> int:
    from deployments.stages.prepared_indexes import drop_for_plan

    return drop_for_plan(plan_id, why=why)
