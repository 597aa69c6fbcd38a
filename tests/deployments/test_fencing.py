"""Fencing of stage attempts: a lease the database releases when an attempt dies, a heartbeat that
survives a dropped connection, a reaper that trusts only the lease, and writes of a lost attempt
refused."""

from __future__ import annotations

import datetime as dt
import logging
import time

import psycopg2
import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.actors import Actor
from deployments.models import DeploymentPlan, Stage, StageKind
from deployments.plans import services as plans
from deployments.stages import lease as leases
from deployments.stages import reaper
from deployments.state import moves
from deployments.state.machine import PlanState, StageState
from environments import services as env_services

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = Actor.system("test")
P, T = PlanState, StageState


@pytest.fixture
def running_stage():
    source, target = (
        env_services.save_environment(actor=SYSTEM, data={"name": name, "order": order, "kind": name})
        for order, name in enumerate(["Development", "Test"], start=1)
    )

    def make(*, state: str = P.CONTINUING, kind: str = StageKind.CONTINUE) -> Stage:
        plan = plans.create_plan(actor=SYSTEM, source=source, target=target, operations=[])
        DeploymentPlan.objects.filter(pk=plan.pk).update(state=state)
        stage = Stage.objects.create(plan=plan, kind=kind)
        claimed = moves.claim_stage(stage.pk, task_id="t", worker="w")
        assert claimed is not None
        return claimed

    return make


def _age(stage: Stage, seconds: int = 600) -> None:
    Stage.objects.filter(pk=stage.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=seconds))


def _lease_free(plan_id: int) -> bool:
    with transaction.atomic(), connection.cursor() as cursor:
        return leases.lease_is_free(cursor, plan_id)


def _freed(plan_id: int, *, within_s: float = 5) -> bool:
    """The server lets go of a closed session's locks when its backend has exited: a moment later."""
    deadline = time.monotonic() + within_s
    while not _lease_free(plan_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_reaper_leaves_a_stage_whose_attempt_holds_its_lease_however_late_its_heartbeat(running_stage):
    stage = running_stage()
    lease = leases.Lease(stage_id=stage.pk, plan_id=stage.plan_id)
    assert lease.acquire(timeout_s=2)
    _age(stage)

    assert reaper.reap_stale_stages() == []
    stage.refresh_from_db()
    assert stage.status == T.RUNNING

    # The attempt's process dies: the database lets go of its lease, and only then is it reaped.
    lease._close()
    assert _freed(stage.plan_id)
    assert reaper.reap_stale_stages() == [stage.pk]
    stage.refresh_from_db()
    assert stage.status == T.ERRORED and "stopped answering" in stage.explanation
    newer = Stage.objects.filter(plan_id=stage.plan_id).exclude(pk=stage.pk).get()
    assert (newer.status, newer.attempt) == (T.QUEUED, 2)


def test_a_second_attempt_cannot_take_the_lease_of_a_live_one(running_stage):
    stage = running_stage()
    first = leases.Lease(stage_id=stage.pk, plan_id=stage.plan_id)
    second = leases.Lease(stage_id=stage.pk + 1000, plan_id=stage.plan_id)
    try:
        assert first.acquire(timeout_s=2)
        assert not second.acquire(timeout_s=0.5)
        assert not _lease_free(stage.plan_id)
    finally:
        first._close()
        second._close()
    assert _freed(stage.plan_id)


def test_a_lost_attempt_can_no_longer_move_its_plan_nor_write_anything(running_stage):
    stage = running_stage()
    with moves.attempt(stage):
        moves.check_attempt()  # live: allowed
        assert moves.lose_stage(stage, stale_before=timezone.now() + dt.timedelta(seconds=1), explanation="lost")
        with pytest.raises(moves.StaleAttempt):
            moves.check_attempt()
        with pytest.raises(moves.StaleAttempt):
            moves.move_plan(stage.plan, expected={P.CONTINUING}, to=P.APPLYING, actor=SYSTEM)
        assert not moves.finish_stage(stage, T.SUCCEEDED)
    plan = DeploymentPlan.objects.get(pk=stage.plan_id)
    assert plan.state == P.CONTINUING
    assert not plan.transitions.filter(to_state=P.APPLYING).exists()


def test_a_newer_attempt_of_the_same_stage_fences_the_older_one(running_stage):
    stage = running_stage()
    Stage.objects.create(plan=stage.plan, kind=stage.kind, attempt=2)
    with pytest.raises(moves.StaleAttempt):
        moves.check_attempt(stage.pk)
    # A queued Continue after a running Prepare is the next stage, not a newer attempt of Prepare.
    DeploymentPlan.objects.filter(pk=stage.plan_id).update(state=P.FINISHED_SUCCESSFUL)
    prepare = running_stage(state=P.PREPARING, kind=StageKind.PREPARE)
    Stage.objects.create(plan=prepare.plan, kind=StageKind.CONTINUE)
    moves.check_attempt(prepare.pk)


def test_two_stages_of_one_plan_never_run_at_once(running_stage):
    stage = running_stage()
    other = Stage.objects.create(plan=stage.plan, kind=StageKind.PREPARE)
    assert moves.claim_stage(other.pk) is None
    other.refresh_from_db()
    assert other.status == T.QUEUED


def test_the_heartbeat_reconnects_after_its_connection_is_terminated_and_keeps_its_lease(
    running_stage, monkeypatch, caplog
):
    monkeypatch.setattr(leases, "HEARTBEAT_SECONDS", 0.2)
    stage = running_stage()
    lease = leases.Lease(stage_id=stage.pk, plan_id=stage.plan_id)
    assert lease.acquire(timeout_s=2)
    caplog.set_level(logging.WARNING, logger=leases.__name__)
    with lease:
        first_pid = lease.pid
        with connection.cursor() as cursor:
            # Only this test's own lease connection.
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND application_name = %s",
                [first_pid, leases.application_name(stage.pk)],
            )
        deadline = time.monotonic() + 10
        while lease.reconnects < 1 or lease.pid == first_pid:
            assert time.monotonic() < deadline, "the heartbeat never reconnected"
            time.sleep(0.1)
        assert not _lease_free(stage.plan_id)
        beat = Stage.objects.get(pk=stage.pk).heartbeat_at
        time.sleep(0.8)
        stage.refresh_from_db()
        assert stage.heartbeat_at > beat, "the heartbeat stopped beating"
        assert stage.lease_pid == lease.pid
        assert not lease.fenced.is_set()
    assert "lost its database connection" in caplog.text
    assert "reconnected to the database" in caplog.text
    assert _freed(stage.plan_id)


def test_the_heartbeat_of_an_attempt_declared_lost_stops_and_fences_it(running_stage, monkeypatch):
    monkeypatch.setattr(leases, "HEARTBEAT_SECONDS", 0.2)
    stage = running_stage()
    lease = leases.Lease(stage_id=stage.pk, plan_id=stage.plan_id)
    assert lease.acquire(timeout_s=2)
    with lease:
        moves.lose_stage(stage, stale_before=timezone.now() + dt.timedelta(seconds=1), explanation="lost")
        assert lease.fenced.wait(5)
    assert _freed(stage.plan_id)


def test_a_heartbeat_that_cannot_take_its_lease_back_does_not_beat_until_it_does(running_stage, monkeypatch):
    monkeypatch.setattr(leases, "HEARTBEAT_SECONDS", 0.2)
    stage = running_stage()
    lease = leases.Lease(stage_id=stage.pk, plan_id=stage.plan_id)
    assert lease.acquire(timeout_s=2)
    other = psycopg2.connect(**{k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"})
    other.autocommit = True
    try:
        with lease:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [lease.pid])
                # Another session takes the plan's lease before the heartbeat can reconnect.
                deadline = time.monotonic() + 5
                while True:
                    cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [leases.LEASE_CLASS, stage.plan_id])
                    if cursor.fetchone()[0]:
                        break
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            time.sleep(0.5)
            held_beat = Stage.objects.get(pk=stage.pk).heartbeat_at
            time.sleep(1.0)
            assert Stage.objects.get(pk=stage.pk).heartbeat_at == held_beat, "it beat without its lease"
            assert not lease.fenced.is_set()
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [leases.LEASE_CLASS, stage.plan_id])
            deadline = time.monotonic() + 5
            while Stage.objects.get(pk=stage.pk).heartbeat_at == held_beat:
                assert time.monotonic() < deadline, "it never beat again"
                time.sleep(0.1)
            assert not _lease_free(stage.plan_id)
    finally:
        other.close()
