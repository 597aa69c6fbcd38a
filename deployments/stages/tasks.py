"""The stage worker's tasks: thin, each takes an id and calls one service. Their names stay those
the broker and beat's schedule already know."""

from __future__ import annotations

from celery import shared_task

from deployments.stages import drift, prepared_indexes, queue, reaper, runner


@shared_task(name=queue.RUN_STAGE, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_stage(self, stage_id: int) -> str | None:
    return runner.run(stage_id, task_id=self.request.id or "", worker=self.request.hostname or "")


@shared_task(name="deployments.tasks.reap_stale_stages")
def reap_stale_stages() -> list[int]:
    return reaper.reap_stale_stages()


@shared_task(name=prepared_indexes.DROP_TASK, acks_late=True)
def drop_prepared_indexes(plan_id: int, why: str) -> int:
    return prepared_indexes.drop_for_plan(plan_id, why=why)


@shared_task(name="deployments.tasks.check_frontends")
def check_frontends() -> int:
    """Ask the agents for their reports and compare with the running versions; how many drifted."""
    return len(drift.check_frontends())
