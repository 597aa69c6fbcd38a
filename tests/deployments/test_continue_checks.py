"""What Continue does between the click and its first SQL statement costs the same for one
application as for twenty: one connection to the target's application database and one catalog
read for all of the plan's applications, and a fixed number of queries on the console's database.
Counted on real PostgreSQL (the statements the target received), never timed."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.stages.validity import check_still_valid
from deployments.steps.sql_execute import current_fingerprint
from tests.deployments.many_applications import small_application_bundle
from tests.deployments.test_plans import _plan, _prepared
from tests.deployments.test_window_sql import _query


class TargetCalls:
    """Every connection opened to one database and every statement sent on them (psycopg2's own
    connect, wrapped: the connections are real)."""

    def __init__(self, monkeypatch, dsn: str) -> None:
        self.dsn = dsn
        self.connections = 0
        self.statements: list[str] = []
        real = psycopg2.connect
        calls = self

        class Counting(psycopg2.extensions.cursor):
            def execute(self, query, vars=None):  # noqa: A002 - psycopg2's name
                calls.statements.append(query if isinstance(query, str) else query.decode())
                return super().execute(query, vars)

        def connect(dsn=None, *args, **kwargs):
            if dsn == calls.dsn:
                calls.connections += 1
                kwargs.setdefault("cursor_factory", Counting)
            return real(dsn, *args, **kwargs)

        monkeypatch.setattr(psycopg2, "connect", connect)

    @property
    def catalog_reads(self) -> int:
        return sum(1 for s in self.statements if "pg_class" in s and "json_agg" in s)


def _prepared_plan(landscape, user, count: int, prefix: str = "app", target: str = "Production"):
    versions = [
        catalog.register_bundle(data=small_application_bundle(f"{prefix}_{n:02d}"), actor=Actor.person(user))
        for n in range(count)
    ]
    plan = _prepared(_plan(landscape, user, versions, target=target))
    prod = landscape[target]
    # What Prepare recorded: each application's fingerprint, read the way Prepare reads it.
    plan.prepared_snapshot = {
        **plan.prepared_snapshot,
        "fingerprints": {
            v.application.name: current_fingerprint(
                environment=prod, schema=v.application.name, application=v.application.name
            )
            for v in versions
        },
    }
    plan.save(update_fields=["prepared_snapshot"])
    return plan


@pytest.mark.parametrize("count", [1, 20])
def test_continue_checks_the_target_on_one_connection_with_one_catalog_read(landscape, admin_user, monkeypatch, count):
    plan = _prepared_plan(landscape, admin_user, count)
    calls = TargetCalls(monkeypatch, landscape["Production"].app_db_dsn())
    assert check_still_valid(plan) == []
    assert calls.connections == 1
    assert calls.catalog_reads == 1
    # Who the server is, then the schemas: nothing per application.
    assert len(calls.statements) == 2


def test_continue_checks_make_as_many_console_queries_for_twenty_applications_as_for_one(landscape, admin_user):
    counts = []
    # Two plans, each holding its own target.
    for count, prefix, target in ((1, "one", "Test"), (20, "many", "Production")):
        plan = _prepared_plan(landscape, admin_user, count, prefix, target)
        plan = type(plan).objects.select_related("target").get(pk=plan.pk)  # as the stage runner loads it
        with CaptureQueriesContext(connection) as queries:
            assert check_still_valid(plan) == []
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_continue_names_only_the_application_whose_schema_drifted(landscape, admin_user):
    plan = _prepared_plan(landscape, admin_user, 5)
    prod = landscape["Production"]
    _query(prod, "create schema app_03; create table app_03.surprise (id int)")
    problems = check_still_valid(plan)
    assert len(problems) == 1 and problems[0].startswith("the database schema of app_03 changed since Prepare")


class FirstStatement(Exception):
    pass


def test_continue_checks_the_fingerprints_in_its_transaction_with_one_catalog_read(landscape, admin_user, monkeypatch):
    """Inside the plan's transaction, under its locks, every application's schema is read again
    in one query before the first statement; the hook stops it there (nothing is applied)."""
    from deployments.models import GeneratedSql, OperationKind
    from deployments.stages import engine
    from deployments.stages.log import PlanStepLog
    from tests.deployments.test_window_sql import plans_transition_running

    plan = _prepared_plan(landscape, admin_user, 5)
    prod = landscape["Production"]
    for op in plan.operations.select_related("application", "version"):
        generated = engine.generate_and_rehearse(prod, op.version, PlanStepLog(plan))
        GeneratedSql.objects.create(plan=plan, application=op.application, version=op.version, **generated.model_fields)
    plans_transition_running(plan)
    deploys = [op for op in plan.operations.select_related("application", "version") if op.kind == OperationKind.DEPLOY]
    generated = {g.application_id: g for g in GeneratedSql.objects.filter(plan=plan)}
    calls = TargetCalls(monkeypatch, prod.app_db_dsn())

    def first_statement() -> None:
        raise FirstStatement()

    with pytest.raises(FirstStatement):
        engine.execute_plan_sql(
            plan, prod, deploys, generated, PlanStepLog(plan), resumed=False, before_first_statement=first_statement
        )
    assert calls.connections == 1
    assert calls.catalog_reads == 1
    assert _query(prod, "select count(*) from pg_namespace where nspname like 'app\\_%'") == [(0,)]
