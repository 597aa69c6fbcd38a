"""The demo data of the README: created once, however often the first command runs; each environment
with a database and roles of its own that cannot reach the console's database nor each other's."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator

import psycopg2
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from core.models import AuditEvent
from deployments import demo
from environments.models import AccessLevel, Environment, EnvironmentAccess, FrontEnd
from tests.conftest import server_params


@pytest.fixture
def demo_databases(db) -> Iterator[None]:
    """Drop the demo's application databases and roles afterwards (they live in the cluster, outside
    the test's transaction)."""
    yield
    conn = psycopg2.connect(**server_params())
    conn.autocommit = True
    with conn.cursor() as cur:
        for name, *_ in demo.DEMO_ENVIRONMENTS:
            names = demo.demo_names(name)
            cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(names["database"])))
            for role in (names["deployer"], names["application"]):
                cur.execute(
                    "select datname from pg_database where datdba = (select oid from pg_roles where rolname = %s)",
                    [role],
                )
                for (leftover,) in cur.fetchall():
                    cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(leftover)))
                cur.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
    conn.close()


def test_loading_the_demo_twice_creates_everything_once(demo_databases, tmp_path):
    demo.load_environments(frontends_root=tmp_path, log=lambda *_: None)
    counts = (Environment.objects.count(), FrontEnd.objects.count(), User.objects.count(), AuditEvent.objects.count())
    demo.load_environments(frontends_root=tmp_path, log=lambda *_: None)
    assert (
        Environment.objects.count(),
        FrontEnd.objects.count(),
        User.objects.count(),
        AuditEvent.objects.count(),
    ) == counts
    assert list(Environment.objects.values_list("name", "order", "two_stage_deployments")) == [
        ("Development", 1, False),
        ("Test", 2, False),
        ("Production", 3, True),
    ]
    prod = Environment.objects.get(name="Production")
    assert prod.window_label().startswith("02:00–04:00")
    assert FrontEnd.objects.filter(environment=prod).count() == 2
    assert set(EnvironmentAccess.objects.filter(user__username="ops").values_list("level", flat=True)) == {
        AccessLevel.VIEW
    }
    assert set(EnvironmentAccess.objects.filter(user__username="release").values_list("level", flat=True)) == {
        AccessLevel.DEPLOY
    }
    assert User.objects.get(username="admin").check_password(demo.DEMO_PASSWORD)
    conn = psycopg2.connect(prod.app_db_dsn())  # its own application database answers
    conn.close()


def _as(dsn: str, *, dbname: str | None = None):
    params = parse_dsn(dsn)
    if dbname:
        params["dbname"] = dbname
    conn = psycopg2.connect(make_dsn(**params), connect_timeout=5)
    conn.autocommit = True
    return conn


def test_the_demos_roles_cannot_read_the_consoles_database_nor_each_others(demo_databases, tmp_path):
    secrets_dir = tmp_path / "secrets"
    demo.load_environments(frontends_root=tmp_path / "frontends", secrets_dir=secrets_dir, log=lambda *_: None)
    console = settings.DATABASES["default"]["NAME"]
    dev, prod = Environment.objects.get(name="Development"), Environment.objects.get(name="Production")
    deployer = dev.app_db_dsn()
    application = (secrets_dir / "development.app.dsn").read_text()
    assert stat.S_IMODE(os.stat(secrets_dir / "development.app.dsn").st_mode) == 0o600

    for dsn in (deployer, application):
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            _as(dsn, dbname=console)
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            _as(dsn, dbname=parse_dsn(prod.app_db_dsn())["dbname"])

    conn = _as(deployer)
    with conn.cursor() as cur:
        cur.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user")
        assert cur.fetchone() == (False, False, False)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select pg_read_file('/etc/passwd')")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("copy (select 1) to program 'true'")
        # No copy of the console's database either.
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier("copy_of_console"), sql.Identifier(console)
                )
            )
        # What a deployment does: its schema and tables, which the applications may then use.
        cur.execute("create schema hr_core")
        cur.execute("create table hr_core.employee (id serial primary key, name text)")
    conn.close()
    conn = _as(application)
    with conn.cursor() as cur:
        cur.execute("insert into hr_core.employee (name) values ('Ada')")
        cur.execute("select count(*) from hr_core.employee")
        assert cur.fetchone() == (1,)
        for statement in ("create table hr_core.mine (id int)", "create schema mine", "drop table hr_core.employee"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
    conn.close()

    out = io.StringIO()
    call_command("frontend_processes", "--secrets-dir", str(secrets_dir), stdout=out, stderr=io.StringIO())
    lines = out.getvalue().splitlines()
    server = next(line for line in lines if line.startswith("frontend-development-fe1:"))
    assert f"LIFETIME_APP_DB_DSN_FILE={(secrets_dir / 'development.app.dsn').resolve()}" in server
    agent = next(line for line in lines if line.startswith("agent-development-fe1:"))
    key_file = secrets_dir / "agent-development-fe1.key"
    assert f"AGENT_KEY_FILE={key_file.resolve()}" in agent and "AGENT_RELEASES_ROOT=" in agent
    assert key_file.read_text() == FrontEnd.objects.get(environment=dev, name="fe1").agent_key()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert deployer not in out.getvalue() and "password" not in out.getvalue()
