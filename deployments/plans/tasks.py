"""Beat's work on plans: thin tasks over the plan services."""

from __future__ import annotations

from celery import shared_task

from deployments.plans import services


@shared_task(name="deployments.tasks.expire_prepared_plans")
def expire_prepared_plans() -> list[str]:
    return [str(plan.key) for plan in services.expire_prepared_plans()]


@shared_task(name="deployments.tasks.run_scheduled_continues")
def run_scheduled_continues() -> list[str]:
    return [str(plan.key) for plan in services.run_scheduled_continues()]


@shared_task(name="deployments.tasks.start_queued_plans")
def start_queued_plans() -> list[str]:
    return [str(plan.key) for plan in services.start_all_queued_plans()]
