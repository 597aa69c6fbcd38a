"""The plan's log (append-only, numbered) and the StepLog that steps write through."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from deployments.models import DeploymentPlan, LogLine, Step
from deployments.state.machine import StepState

MAX_MESSAGE = 10_000


def append_log(plan: DeploymentPlan | int, level: str, message: str) -> LogLine:
    plan_id = plan if isinstance(plan, int) else plan.pk
    # The counter lives on the plan row: concurrent writers get distinct, gap-free numbers.
    with connection.cursor() as cursor:
        cursor.execute(
            "update deployments_deploymentplan set log_seq = log_seq + 1 where id = %s returning log_seq", [plan_id]
        )
        seq = cursor.fetchone()[0]
    return LogLine.objects.create(plan_id=plan_id, seq=seq, level=level, message=message[:MAX_MESSAGE])


class PlanStepLog:
    """StepLog writing to the plan's log and to one Step's progress."""

    def __init__(self, plan: DeploymentPlan, step: Step | None = None) -> None:
        self.plan = plan
        self.step = step
        self.warnings = 0
        self.errors = 0

    def info(self, message: str) -> None:
        append_log(self.plan, "info", message)

    def warning(self, message: str) -> None:
        self.warnings += 1
        append_log(self.plan, "warning", message)

    def error(self, message: str) -> None:
        self.errors += 1
        append_log(self.plan, "error", message)

    def progress(self, done: int, total: int) -> None:
        if self.step is not None:
            Step.objects.filter(pk=self.step.pk).update(done=done, total=total)


def begin_step(stage, kind: str, subject: str = "", *, total: int = 0) -> Step:
    return Step.objects.create(
        stage=stage, kind=kind, subject=subject, status=StepState.RUNNING, total=total, started_at=timezone.now()
    )


def end_step(step: Step, status: str = StepState.DONE, **detail) -> None:
    fields = {"status": status, "finished_at": timezone.now()}
    if status == StepState.DONE:
        step.refresh_from_db(fields=["total"])
        fields["done"] = step.total
    if detail:
        fields["detail"] = {**step.detail, **detail}
    Step.objects.filter(pk=step.pk).update(**fields)
