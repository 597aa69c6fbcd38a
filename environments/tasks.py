"""Thin periodic tasks of the infrastructure side (the lead schedules them in beat)."""

from __future__ import annotations

from celery import shared_task

from environments import agents


@shared_task(name="environments.tasks.refresh_frontend_reports")
def refresh_frontend_reports() -> int:
    """Ask every enabled front-end's agent for its report; returns how many answered."""
    return sum(1 for report in agents.refresh_reports() if report.answered)
