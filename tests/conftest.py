"""Shared fixtures: real PostgreSQL (the console's test database plus one application database
per environment), users with LifeTime roles, environments built through the project's services."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from psycopg2 import sql

from core.actors import Actor
from environments import services as env_services
from environments.access import INFRA_ADMINS_GROUP
from environments.models import AccessLevel, Environment

PASSWORD = "lifetime-demo"
# The rehearsal server's throughputs measured on a small table: each test starts with no history.
os.environ.setdefault("REHEARSAL_CALIBRATION_ROWS", "20000")


@pytest.fixture(autouse=True)
def small_rehearsal_calibration(settings) -> None:
    settings.REHEARSAL_CALIBRATION_ROWS = int(os.environ["REHEARSAL_CALIBRATION_ROWS"])


# Tests call servers they start on this machine (webhook endpoints, front-end servers): loopback is
# an allowed target for them and for the workers they start (core.outbound).
LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]
os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", ",".join(LOOPBACK_NETWORKS))


@pytest.fixture(autouse=True)
def outbound_to_loopback(settings) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = list(LOOPBACK_NETWORKS)


def server_params(dbname: str = "postgres") -> dict:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": db.get("PORT") or 5432,
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or None,
        "dbname": dbname,
    }


def dsn_for(dbname: str) -> str:
    p = server_params(dbname)
    auth = p["user"] + (f":{p['password']}" if p["password"] else "")
    return f"postgres://{auth}@{p['host']}:{p['port']}/{dbname}"


def dsn_as(role: str, dbname: str) -> str:
    p = server_params(dbname)
    return f"postgres://{role}@{p['host']}:{p['port']}/{dbname}"


class AppDatabases:
    """Creates throw-away PostgreSQL databases (an environment's application database), each owned by
    a role of its own with only what a deployment needs (as the demo does), and drops them."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def _admin(self):
        conn = psycopg2.connect(**server_params())
        conn.autocommit = True
        return conn

    def create(self, prefix: str = "ltapp") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = self._admin()
        with conn.cursor() as cur:
            # What a deployment needs on its target: its own database, nothing more (Prepare rehearses
            # on the console's rehearsal server, not here).
            cur.execute(
                sql.SQL("create role {} login nosuperuser nocreaterole nocreatedb").format(sql.Identifier(name))
            )
            cur.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(name), sql.Identifier(name)))
        conn.close()
        self.created.append(name)
        return dsn_as(name, name)

    def drop_all(self) -> None:
        conn = self._admin()
        with conn.cursor() as cur:
            for name in self.created:
                cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
                # A scratch database left by an interrupted rehearsal would keep the role alive.
                cur.execute(
                    "select datname from pg_database where datdba = (select oid from pg_roles where rolname = %s)",
                    [name],
                )
                for (leftover,) in cur.fetchall():
                    cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(leftover)))
                cur.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))
        conn.close()
        self.created.clear()


@pytest.fixture
def app_databases() -> Iterator[AppDatabases]:
    dbs = AppDatabases()
    yield dbs
    dbs.drop_all()


def make_user(username: str, *, infra_admin: bool = False) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    if infra_admin:
        group, _ = Group.objects.get_or_create(name=INFRA_ADMINS_GROUP)
        user.groups.add(group)
    return user


@pytest.fixture
def admin_user(db) -> User:
    return make_user("admin", infra_admin=True)


@pytest.fixture
def landscape(db, tmp_path: Path, app_databases: AppDatabases, admin_user: User) -> dict[str, Environment]:
    """Development, Test and Production like the demo: each with its own application database and
    two front-end folders; Production in two stages with a 02:00-04:00 window."""
    envs: dict[str, Environment] = {}
    for order, (name, kind, two_stage) in enumerate(
        [("Development", "Development", False), ("Test", "Test", False), ("Production", "Production", True)], start=1
    ):
        data = {
            "name": name,
            "order": order,
            "kind": kind,
            "two_stage_deployments": two_stage,
            "window_days": list(range(7)) if two_stage else [],
            "window_start": dt.time(2, 0) if two_stage else None,
            "window_minutes": 120 if two_stage else None,
            "window_timezone": "UTC",
            "prepared_plan_ttl_hours": 96,
        }
        env = env_services.save_environment(
            actor=Actor.person(admin_user), data=data, app_db_dsn=app_databases.create()
        )
        for n in (1, 2):
            env_services.save_frontend(
                actor=Actor.person(admin_user),
                environment=env,
                data={"name": f"fe{n}", "releases_root": str(tmp_path / name.lower() / f"fe{n}"), "enabled": True},
            )
        envs[name] = env
    return envs


@pytest.fixture
def release_user(landscape) -> User:
    user = make_user("release")
    for env in landscape.values():
        env_services.set_access(actor=Actor.system("test"), user=user, environment=env, level=AccessLevel.DEPLOY)
    return user


@pytest.fixture
def ops_user(landscape) -> User:
    user = make_user("ops")
    for env in landscape.values():
        env_services.set_access(actor=Actor.system("test"), user=user, environment=env, level=AccessLevel.VIEW)
    return user


# --- browser ---------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="session")
def chromium():
    """The system's Chromium driven by Playwright (Playwright cannot download browsers here)."""
    import os

    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself
    # are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def is_csp_violation(text: str) -> bool:
    return "Content Security Policy" in text or "Content-Security-Policy" in text


@pytest.fixture
def page(chromium):
    """A page of a fresh browser context. The test fails if Chromium reported a violation of the
    console's Content-Security-Policy while it ran (an inline script or style it refused)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if is_csp_violation(message.text) else None)
    yield page
    context.close()
    assert not violations, "Chromium reported Content-Security-Policy violations:\n" + "\n".join(violations)


def sign_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end the sessions that subprocesses (workers, beat,
    the live server's threads) may still hold on it, so the next run starts clean."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
        )


# --- the artifact store on a real S3 server (moto's server mode) ------------------------------


@pytest.fixture(scope="session")
def s3_server():
    from tests.object_store import S3Server

    server = S3Server().start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture
def s3_artifacts(s3_server, settings, tmp_path: Path):
    """The console's artifacts in a bucket of their own on the S3 server; ARTIFACT_ROOT points at an
    empty folder that must stay empty. Yields the variables a process started by the test needs."""
    from tests.object_store import process_env, storage_options

    bucket = s3_server.new_bucket()
    settings.ARTIFACT_ROOT = tmp_path / "local-artifacts-unused"
    settings.STORAGES = {**settings.STORAGES, "artifacts": storage_options(s3_server, bucket)}
    yield {"bucket": bucket, "server": s3_server, "env": process_env(s3_server, bucket)}
