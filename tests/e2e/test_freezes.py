"""A freeze with a real stage worker, real agents and the real beat: Continue is refused and the
running version stays; a scheduled Continue whose time falls in the freeze does not start; a user
with the manage right overrides the freeze with a reason, audited, and Continue switches every
front-end."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from deployments.models import PlanState
from deployments.plans import services as plans
from environments import services as env_services
from environments.models import AccessLevel
from tests.conftest import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
S = PlanState


def test_a_freeze_holds_continue_and_the_scheduled_continue_until_a_manager_overrides_it(engine):
    engine.start_worker()
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    manager = make_user("manager")
    env_services.set_access(actor=Actor.system("test"), user=manager, environment=prod, level=AccessLevel.MANAGE)
    release = Actor.person(engine.release)

    plan = engine.plan("Development", "Production", [engine.version("hr_core", "1.0.0")])
    plans.start_plan(actor=release, plan=plan)  # Prepare is not frozen: it changes nothing running
    engine.wait(plan, S.PREPARED)
    # Continue scheduled in a few seconds; then a freeze is declared over that time.
    now = timezone.now()
    plans.schedule_continue(actor=release, plan=plan, at=now + dt.timedelta(seconds=4))
    env_services.add_freeze(
        actor=Actor.person(manager),
        environment=prod,
        reason="Black Friday",
        starts_at=now,
        ends_at=now + dt.timedelta(hours=6),
    )
    with pytest.raises(plans.Frozen, match="Black Friday"):
        plans.continue_plan(actor=release, plan=plan)
    with pytest.raises(plans.Frozen, match="is in a freeze"):
        plans.schedule_continue(actor=release, plan=plan, at=now + dt.timedelta(minutes=30))
    engine.start_beat()
    deadline = time.monotonic() + 60
    while True:
        plan.refresh_from_db()
        if plan.is_prepared and not plan.is_scheduled:
            break
        assert time.monotonic() < deadline, f"the beat never looked at the scheduled Continue: {plan.state}"
        time.sleep(0.5)
    assert "Black Friday" in plan.transitions.last().reason
    assert engine.running("Production") == {}

    plans.continue_plan(actor=Actor.person(manager), plan=plan, override_reason="payments outage fix")
    engine.wait(plan, S.FINISHED_SUCCESSFUL, S.FINISHED_WITH_WARNINGS)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    event = AuditEvent.objects.get(action="plan.freeze_overridden")
    assert event.actor_name == "manager" and event.message.endswith("Reason: payments outage fix")
