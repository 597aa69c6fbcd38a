"""Approvals before Continue with a real stage worker, real agents and the real beat: the preparer
cannot approve, a second person's approval lets Continue run and switch every front-end, Prepare
Again voids an approval, a rejection blocks, and a scheduled Continue waits for its approvals and
runs once they are in."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import PlanState
from deployments.plans import approvals
from deployments.plans import services as plans
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
S = PlanState
FINISHED_OK = (S.FINISHED_SUCCESSFUL, S.FINISHED_WITH_WARNINGS)


def _production_asking_for_one_approval(engine):
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    data = {name: getattr(prod, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(approvals_required=1)
    prod = env_services.save_environment(actor=Actor.person(engine.hosts.actor), environment=prod, data=data)
    engine.environments["Production"] = prod
    approver = make_user("approver")
    env_services.set_access(actor=Actor.system("test"), user=approver, environment=prod, level=AccessLevel.DEPLOY)
    return prod, Actor.person(approver)


def test_continue_runs_once_somebody_other_than_the_preparer_approved(engine):
    engine.start_worker()
    prod, approver = _production_asking_for_one_approval(engine)
    release = Actor.person(engine.release)

    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.0.0")])
    plans.start_plan(actor=release, plan=plan)
    engine.wait(plan, S.PREPARED)
    with pytest.raises(approvals.ApprovalRefused, match="somebody else must approve"):
        approvals.approve(actor=release, plan=plan)
    with pytest.raises(plans.ApprovalsMissing):
        plans.continue_plan(actor=release, plan=plan)

    # Prepare Again voids an approval given to the earlier attempt.
    approvals.approve(actor=approver, plan=plan, comment="first look")
    plans.prepare_again(actor=release, plan=plan)
    engine.wait(plan, S.PREPARED)
    with pytest.raises(plans.ApprovalsMissing, match="0 given, 1 missing"):
        plans.continue_plan(actor=release, plan=plan)

    # A rejection blocks, until the plan is prepared again.
    approvals.reject(actor=approver, plan=plan, comment="wrong build")
    with pytest.raises(plans.ApprovalsMissing, match="Rejected by approver: wrong build"):
        plans.continue_plan(actor=release, plan=plan)
    plans.prepare_again(actor=release, plan=plan)
    engine.wait(plan, S.PREPARED)

    approvals.approve(actor=approver, plan=plan, comment="go")
    plans.continue_plan(actor=release, plan=plan)
    engine.wait(plan, *FINISHED_OK)
    assert engine.running("Production") == {"hr_core": "1.0.0"}
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    assert list(
        AuditEvent.objects.filter(object_key=str(plan.key), action__startswith="plan.")
        .order_by("id")
        .values_list("action", flat=True)
    ) == [
        "plan.created",
        "plan.started",
        "plan.approved",
        "plan.prepared_again",
        "plan.rejected",
        "plan.prepared_again",
        "plan.approved",
        "plan.continued",
    ]


def test_a_scheduled_continue_waits_for_its_approval_then_the_beat_runs_it(engine):
    engine.start_worker()
    prod, approver = _production_asking_for_one_approval(engine)
    release = Actor.person(engine.release)
    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.0.0")])
    plans.start_plan(actor=release, plan=plan)
    engine.wait(plan, S.PREPARED)
    plans.schedule_continue(actor=release, plan=plan, at=timezone.now() + dt.timedelta(seconds=2))
    engine.start_beat()
    # The beat asks every 15 s: past its time and a tick later, the plan still waits, scheduled.
    time.sleep(20)
    plan.refresh_from_db()
    assert plan.state == S.SCHEDULED
    assert engine.running("Production") == {}

    approvals.approve(actor=approver, plan=plan)
    engine.wait(plan, *FINISHED_OK, timeout_s=90)
    assert engine.running("Production") == {"hr_core": "1.0.0"}
    assert plan.transitions.filter(reason="Scheduled Continue").exists()
