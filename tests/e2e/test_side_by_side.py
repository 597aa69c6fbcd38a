"""Plans side by side on one environment and the queue, with the real engine: a stage worker,
agents and front-end servers. Two plans sharing nothing hold Production at once; a third that
shares an application with one of them waits in the queue and runs when that one finishes."""

from __future__ import annotations

import pytest

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.models import PlanState
from deployments.plans import services as plans
from deployments.state import moves
from environments import services as env_services
from tests.catalog.conftest import example_bundle

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

S = PlanState
DONE = (S.FINISHED_SUCCESSFUL, S.FINISHED_WITH_WARNINGS)


def standalone_portal() -> bytes:
    """Leave Portal 1.0.0 without its dependency on HR Core: an application sharing nothing with it."""
    manifest = example_bundle_manifest("leave_portal", "1.0.0").replace('[dependencies]\nhr_core = ">=1.0,<2"\n', "")
    return example_bundle("leave_portal", "1.0.0", {"lifetime.toml": manifest.encode()})


def example_bundle_manifest(app: str, version: str) -> str:
    from examples.build import ROOT

    return (ROOT / app / "versions" / version / "lifetime.toml").read_text()


def test_two_plans_sharing_nothing_run_at_once_and_an_overlapping_one_waits_its_turn(engine):
    engine.start_worker()
    prod = engine.environment("Production", order=3, two_stage=True, app_db=engine.app_databases.create())
    data = {name: getattr(prod, name) for name in env_services.ENVIRONMENT_FIELDS}
    data.update(concurrent_plans=2, queue_plans=True)
    prod = env_services.save_environment(actor=Actor.system("test"), environment=prod, data=data)
    engine.environments["Production"] = prod
    release = Actor.person(engine.release)

    hr100, hr110 = engine.version("hr_core", "1.0.0"), engine.version("hr_core", "1.1.0")
    portal = catalog.register_bundle(data=standalone_portal(), actor=Actor.person(engine.hosts.actor))
    assert portal.dependencies == []

    first = engine.plan("Development", "Production", [hr100])
    second = engine.plan("Development", "Production", [portal])
    plans.start_plan(actor=release, plan=first)
    plans.start_plan(actor=release, plan=second)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.holds_target and second.holds_target, (first.state, second.state)
    engine.wait(first, S.PREPARED)
    engine.wait(second, S.PREPARED)
    assert {p.pk for p in moves.holders_of(prod.pk)} == {first.pk, second.pk}

    # Shares hr_core with the first: queued, whatever the limit.
    third = engine.plan("Development", "Production", [hr110])
    plans.start_plan(actor=release, plan=third)
    third.refresh_from_db()
    assert third.state == S.QUEUED and plans.queue_position(third) == 1

    plans.continue_plan(actor=release, plan=first)
    plans.continue_plan(actor=release, plan=second)
    engine.wait(first, *DONE)
    engine.wait(second, *DONE)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.0.0", "hr_core 1.0.0"]
    assert engine.answers("Production", "/leave_portal") == ["leave_portal 1.0.0", "leave_portal 1.0.0"]

    # The first plan freed hr_core: the queued plan started on its own.
    engine.wait(third, S.PREPARED)
    assert third.transitions.filter(from_state=S.QUEUED, to_state=S.PREPARING, actor_name="queue").exists()
    plans.continue_plan(actor=release, plan=third)
    engine.wait(third, *DONE)
    assert engine.answers("Production", "/hr_core") == ["hr_core 1.1.0", "hr_core 1.1.0"]
    assert engine.running("Production") == {"hr_core": "1.1.0", "leave_portal": "1.0.0"}
