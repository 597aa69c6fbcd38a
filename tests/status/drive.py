"""Plans moved through their stages by the test itself, without the stage worker: states only
through the state module's moves, stages claimed and finished there too, steps and log
lines through deployments/stages/log.py — the same calls Prepare and Continue make, in the same order.
Real pages can then be read (or watched in a browser) at every point of a deployment."""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.utils import timezone

from core.actors import Actor
from deployments.models import (
    ApplicationVersion,
    DeploymentPlan,
    GeneratedSql,
    Stage,
    StageKind,
    Step,
    StepKind,
)
from deployments.plans import services as plans
from deployments.stages.log import PlanStepLog, append_log, begin_step, end_step
from deployments.state import moves
from deployments.state.machine import PlanState, StageState
from environments.models import Environment

S = PlanState
SYSTEM = Actor.system("test driver")

SQL_STATEMENTS = [
    {"sql": "create schema if not exists hr", "kind": "create_schema", "source": "data model", "flags": []},
    {
        "sql": "create table hr.employee (id bigserial primary key, name varchar(200) not null, hired_on date)",
        "kind": "create_table",
        "source": "data model",
        "flags": [],
    },
    {
        "sql": "alter table hr.department add column cost_centre varchar(20) default 'none' not null",
        "kind": "add_column",
        "source": "data model",
        "flags": ["lock_heavy"],
    },
    {
        "sql": "update hr.department set cost_centre = 'CC-' || id where cost_centre = 'none'",
        "kind": "script",
        "source": "sql/002_cost_centre.sql",
        "flags": ["touches_rows"],
        "line": 3,
    },
]


class PlanDriver:
    """Moves one plan through Prepare and Continue, step by step, at the pace the test chooses."""

    def __init__(self, plan: DeploymentPlan, *, actor, pace: float = 0.0) -> None:
        self.plan = plan
        self.user = actor
        self.actor = Actor.person(actor)
        self.pace = pace

    def _wait(self, factor: float = 1.0) -> None:
        if self.pace:
            time.sleep(self.pace * factor)

    @property
    def frontends(self) -> list[str]:
        return list(self.plan.target.frontends.filter(enabled=True).order_by("name").values_list("name", flat=True))

    @property
    def versions(self) -> list[ApplicationVersion]:
        return [
            op.version
            for op in self.plan.operations.select_related("application", "version").order_by("application__name")
            if op.version
        ]

    def log(self, message: str, level: str = "info") -> None:
        append_log(self.plan, level, message)

    # --- states ------------------------------------------------------------------------------

    def start(self) -> None:
        moves.move_plan(
            self.plan,
            expected={S.SAVED},
            to=S.PREPARING,
            actor=self.actor,
            reason="Prepare Deployment" if self.plan.target.two_stage_deployments else "Deploy Now",
            fields={"started_at": timezone.now(), "started_by": self.user},
        )

    def stage(self, kind: str) -> Stage:
        attempt = Stage.objects.filter(plan=self.plan, kind=kind).count() + 1
        stage = Stage.objects.create(plan=self.plan, kind=kind, attempt=attempt, requested_by=self.user)
        claimed = moves.claim_stage(stage.pk, task_id=f"test-{stage.pk}", worker="test-driver")
        assert claimed is not None
        return claimed

    def finish_stage(self, stage: Stage, status: str = StageState.SUCCEEDED, explanation: str = "") -> None:
        moves.finish_stage(stage, status, explanation=explanation)

    # --- Prepare -------------------------------------------------------------------------------

    def validate(self, stage: Stage) -> None:
        self.log(f"Prepare started (attempt {stage.attempt}) for {self.plan.target.name}.")
        step = begin_step(stage, StepKind.VALIDATE, total=1)
        self._wait(0.3)
        end_step(step)

    def compile(self, stage: Stage, version: ApplicationVersion, *, finish: bool = True) -> Step:
        step = begin_step(stage, StepKind.COMPILE, version.application.name)
        self.log(f"Compiling {version.application.name} {version.version}.")
        self._wait()
        if finish:
            self.log(f"{version.application.name} {version.version} compiled.")
            end_step(step)
        return step

    def generate_sql(self, stage: Stage, version: ApplicationVersion, *, warnings: Sequence[str] = ()) -> Step:
        step = begin_step(stage, StepKind.GENERATE_SQL, version.application.name)
        self._wait(0.6)
        for warning in warnings:
            self.log(warning, "warning")
        GeneratedSql.objects.create(
            plan=self.plan,
            application=version.application,
            version=version,
            statements=SQL_STATEMENTS,
            warnings=list(warnings),
            schema_fingerprint="f" * 64,
            rehearsal_seconds=1.25,
        )
        self.log(f"{len(SQL_STATEMENTS)} statements generated and rehearsed for {version.application.name}.")
        end_step(step, statements=len(SQL_STATEMENTS), rehearsal_seconds=1.25)
        return step

    def upload(self, stage: Stage, *, upto: int | None = None) -> dict[str, Step]:
        binaries = len(self.versions)
        steps = {name: begin_step(stage, StepKind.UPLOAD, name, total=binaries) for name in self.frontends}
        for done in range(1, (binaries if upto is None else upto) + 1):
            self._wait(0.5)
            for name, step in steps.items():
                PlanStepLog(self.plan, step).progress(done, binaries)
                self.log(f"front-end {name}: binary {done} of {binaries} unpacked.")
        if upto is None:
            for step in steps.values():
                end_step(step)
        return steps

    def prepared(self) -> None:
        moves.move_plan(
            self.plan,
            expected={S.PREPARING},
            to=S.PREPARED,
            actor=SYSTEM,
            reason="Prepare finished: continue in the deployment window",
            fields={"prepared_at": timezone.now(), "prepared_snapshot": {"running": {}, "frontends": self.frontends}},
        )
        self.log("Deployment prepared: binaries are on every front-end, nothing running changed.")

    def prepare(self, *, warnings: Sequence[str] = ()) -> Stage:
        """The whole of Prepare, ending prepared (two-stage target)."""
        self.start()
        stage = self.stage(StageKind.PREPARE)
        self.validate(stage)
        for version in self.versions:
            self.compile(stage, version)
        for version in self.versions:
            self.generate_sql(stage, version, warnings=warnings)
        self.upload(stage)
        self.prepared()
        self.finish_stage(stage)
        return stage

    # --- Continue ------------------------------------------------------------------------------

    def continue_(self) -> Stage:
        moves.move_plan(
            self.plan,
            expected={S.PREPARED},
            to=S.CONTINUING,
            actor=self.actor,
            reason="Continue Deployment",
            fields={"continued_at": timezone.now(), "continued_by": self.user},
        )
        stage = self.stage(StageKind.CONTINUE)
        self.log(f"Continue started (attempt {stage.attempt}).")
        step = begin_step(stage, StepKind.CHECK, total=1)
        self._wait(0.3)
        end_step(step)
        return stage

    def pass_point_of_no_return(self) -> None:
        # What continuation.pass_point_of_no_return does: the move from continuing to applying.
        moves.move_plan(
            self.plan,
            expected={S.CONTINUING},
            to=S.APPLYING,
            actor=SYSTEM,
            reason="Point of no return: Continue changes the target",
            fields={"point_of_no_return_at": timezone.now()},
        )
        self.log("Point of no return: executing SQL on the target; Abort is no longer possible.")
        self.plan.refresh_from_db()

    def execute_sql(self, stage: Stage, *, upto: int | None = None) -> Step:
        total = sum(len(g.statements) for g in GeneratedSql.objects.filter(plan=self.plan))
        step = begin_step(stage, StepKind.EXECUTE_SQL, total=total)
        self.pass_point_of_no_return()
        for done in range(1, (total if upto is None else upto) + 1):
            self._wait(0.2)
            PlanStepLog(self.plan, step).progress(done, total)
            self.log(f"statement {done} of {total} executed.")
        if upto is None:
            end_step(step, statements=total)
        return step

    def switch(self, stage: Stage, *, upto: int | None = None) -> dict[str, Step]:
        names = self.frontends
        steps = {name: begin_step(stage, StepKind.SWITCH, name, total=len(self.versions)) for name in names}
        for name in names[: len(names) if upto is None else upto]:
            self._wait(0.5)
            self.log(f"front-end {name}: switched.")
            end_step(steps[name])
        return steps

    def finish(self, to: str = S.FINISHED_SUCCESSFUL, reason: str = "Deployed") -> None:
        moves.move_plan(self.plan, expected={S.APPLYING}, to=to, actor=SYSTEM, reason=reason)
        self.log(f"Deployment finished: {reason.lower()}.", "info" if to != S.FINISHED_WITH_ERRORS else "error")

    def through_without_stages(self, to: str = S.FINISHED_SUCCESSFUL, reason: str = "Deployed") -> None:
        """A started plan to its end the way Deploy Now moves it, without stages or steps: history
        for pages that list many plans."""
        moves.move_plan(self.plan, expected={S.PREPARING}, to=S.CONTINUING, actor=SYSTEM, reason="Deploy Now")
        moves.move_plan(
            self.plan,
            expected={S.CONTINUING},
            to=S.APPLYING,
            actor=SYSTEM,
            fields={"point_of_no_return_at": timezone.now()},
        )
        self.finish(to, reason)

    def continue_all(self) -> Stage:
        stage = self.continue_()
        self.execute_sql(stage)
        self.switch(stage)
        self.finish()
        self.finish_stage(stage)
        return stage


def new_plan(*, actor, source: Environment, target: Environment, versions, notes: str = "") -> DeploymentPlan:
    return plans.create_plan(
        actor=Actor.person(actor),
        source=source,
        target=target,
        operations=[plans.Operation(v.application, v) for v in versions],
        notes=notes,
    )


def fill_log(plan: DeploymentPlan, count: int) -> None:
    """As many log lines as a long deployment writes, through append_log like the stages."""
    for number in range(count):
        append_log(plan, "info", f"front-end fe{number % 2 + 1}: copying file {number} of the release")
