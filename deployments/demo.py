"""Demo data: the environments, users and front-ends of the README, created through the services.

Running it twice changes nothing: every piece is looked up by name before it is created.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from pathlib import Path

import psycopg2
from django.conf import settings
from django.contrib.auth.models import Group, User
from psycopg2 import sql

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.mobile.config import save_mobile_config
from deployments.models import ApplicationVersion, DeploymentPlan, MobileAppConfig, RunningVersion
from deployments.plans import services as plans
from deployments.state import moves
from environments import services as env_services
from environments.access import INFRA_ADMINS_GROUP
from environments.models import AccessLevel, Environment

DEMO_PASSWORD = "lifetime-demo"
DEMO_ENVIRONMENTS = [
    # name, kind, two stages, first front-end port
    ("Development", "Development", False, 8101),
    ("Test", "Test", False, 8111),
    ("Production", "Production", True, 8121),
]


def _server_params(dbname: str) -> dict:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": db.get("PORT") or 5432,
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or None,
        "dbname": dbname,
    }


def _admin(dbname: str = "postgres"):
    conn = psycopg2.connect(**_server_params(dbname))
    conn.autocommit = True
    return conn


def demo_names(environment: str) -> dict[str, str]:
    """The application database and the two roles of a demo environment, named after the console's
    database so that two consoles on one PostgreSQL (a developer's and the tests') never share them."""
    console = settings.DATABASES["default"]["NAME"]
    env = environment.lower()
    return {
        "database": f"{console}_app_{env}",
        "deployer": f"{console}_{env}_deployer",
        "application": f"{console}_{env}_app",
    }


def _dsn(role: str, password: str, dbname: str) -> str:
    p = _server_params(dbname)
    return f"postgres://{role}:{password}@{p['host']}:{p['port']}/{dbname}"


def ensure_app_database(environment: str, *, secrets_dir: Path | None = None) -> str:
    """Create the environment's application database and its roles on the console's server; return
    the deployment connection (DSN).

    * the deployer role owns the application database and nothing else: no superuser, no CREATEROLE,
      no CREATEDB (Prepare rehearses on the console's own rehearsal server, never on this one);
    * the application role (the deployed applications' connection) may only read and write the rows
      of the tables the deployer creates: it creates nothing;
    * neither may connect to the console's database, nor to another environment's.

    The applications' connection is written to ``secrets_dir/<environment>.app.dsn`` (mode 0600) for
    the front-end servers (``manage.py frontend_processes --secrets-dir``).
    """
    names = demo_names(environment)
    deployer, application, database = names["deployer"], names["application"], names["database"]
    deployer_password = secrets.token_urlsafe(24)
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute("select rolname from pg_roles where rolname in (%s, %s)", [deployer, application])
        existing = {row[0] for row in cur.fetchall()}
        for role, attributes in (
            (deployer, "login nosuperuser nocreaterole nocreatedb noreplication nobypassrls"),
            (application, "login nosuperuser nocreaterole nocreatedb noreplication nobypassrls"),
        ):
            verb = "alter" if role in existing else "create"
            cur.execute(sql.SQL(f"{verb} role {{}} {attributes}").format(sql.Identifier(role)))
        cur.execute(sql.SQL("alter role {} password %s").format(sql.Identifier(deployer)), [deployer_password])
        cur.execute("select 1 from pg_database where datname = %s", [database])
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("create database {} owner {}").format(sql.Identifier(database), sql.Identifier(deployer))
            )
        # By default every role may connect to every database: not here.
        for db in (database, settings.DATABASES["default"]["NAME"]):
            cur.execute(sql.SQL("revoke connect, temporary on database {} from public").format(sql.Identifier(db)))
        cur.execute(
            sql.SQL("grant connect on database {} to {}").format(sql.Identifier(database), sql.Identifier(application))
        )
    conn.close()
    conn = _admin(database)
    with conn.cursor() as cur:
        cur.execute("revoke create on schema public from public")
        # What the deployer creates later (schemas, tables, sequences), the applications may use.
        for statement in (
            "alter default privileges for role {deployer} grant usage on schemas to {application}",
            "alter default privileges for role {deployer} grant select, insert, update, delete on tables to {application}",
            "alter default privileges for role {deployer} grant usage, select on sequences to {application}",
        ):
            cur.execute(
                sql.SQL(statement).format(deployer=sql.Identifier(deployer), application=sql.Identifier(application))
            )
    conn.close()
    if secrets_dir is not None:
        write_application_dsn(environment, secrets_dir=secrets_dir)
    return _dsn(deployer, deployer_password, database)


def write_application_dsn(environment: str, *, secrets_dir: Path) -> Path:
    """A new password for the environment's application role, and its connection in a file only this
    user can read."""
    names = demo_names(environment)
    password = secrets.token_urlsafe(24)
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("alter role {} password %s").format(sql.Identifier(names["application"])), [password])
    conn.close()
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secrets_dir / f"{environment.lower()}.app.dsn"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(_dsn(names["application"], password, names["database"]))
    return path


def ensure_user(username: str, *, infra_admin: bool = False, staff: bool = False) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username, f"{username}@example.com", DEMO_PASSWORD, is_staff=staff)
    if infra_admin:
        group, _ = Group.objects.get_or_create(name=INFRA_ADMINS_GROUP)
        user.groups.add(group)
    return user


def load_environments(*, frontends_root: Path, secrets_dir: Path | None = None, log=print) -> dict[str, Environment]:
    admin_user = ensure_user("admin", infra_admin=True, staff=True)
    if not admin_user.is_superuser:
        admin_user.is_superuser = True
        admin_user.save(update_fields=["is_superuser"])
    admin = Actor.person(admin_user)
    release = ensure_user("release")
    ops = ensure_user("ops")
    envs: dict[str, Environment] = {}
    for order, (name, kind, two_stage, port) in enumerate(DEMO_ENVIRONMENTS, start=1):
        env = Environment.objects.filter(name=name).first()
        if env is None:
            dsn = ensure_app_database(name, secrets_dir=secrets_dir)
            env = env_services.save_environment(
                actor=admin,
                data={
                    "name": name,
                    "order": order,
                    "kind": kind,
                    "hostname": "127.0.0.1",
                    "two_stage_deployments": two_stage,
                    "window_days": list(range(7)) if two_stage else [],
                    "window_start": dt.time(2, 0) if two_stage else None,
                    "window_minutes": 120 if two_stage else None,
                    "window_timezone": settings.TIME_ZONE,
                    "enforce_window": two_stage,
                    "prepared_plan_ttl_hours": 96,
                },
                app_db_dsn=dsn,
            )
            log(f"created environment {name}")
        elif secrets_dir is not None and not (secrets_dir / f"{name.lower()}.app.dsn").exists():
            write_application_dsn(name, secrets_dir=secrets_dir)
        for n in (1, 2):
            if not env.frontends.filter(name=f"fe{n}").exists():
                env_services.save_frontend(
                    actor=admin,
                    environment=env,
                    data={
                        "name": f"fe{n}",
                        "releases_root": str(frontends_root / name.lower() / f"fe{n}"),
                        "base_url": f"http://127.0.0.1:{port + n - 1}/",
                        "health_url": f"http://127.0.0.1:{port + n - 1}/_health",
                        "enabled": True,
                    },
                )
        # Front-ends of a demo loaded before agents had keys: give them one (frontend_processes
        # hands it to their agents).
        for frontend in env.frontends.filter(agent_key_encrypted=""):
            env_services.new_agent_key(actor=admin, frontend=frontend)
            log(f"generated the agent key of {frontend}")
        env_services.set_access(actor=admin, user=release, environment=env, level=AccessLevel.DEPLOY)
        env_services.set_access(actor=admin, user=ops, environment=env, level=AccessLevel.VIEW)
        envs[name] = env
    return envs


# --- catalog and baseline deployments -----------------------------------------------------------

# Every environment runs the older versions; Development runs the newer ones, so that `release`
# can deploy them from Development to Test in one click, and to Production in two stages.
OLDER = [("hr_core", "1.0.0"), ("leave_portal", "1.0.0"), ("field_inspector", "1.0.0")]
NEWER = [("hr_core", "1.1.0"), ("leave_portal", "1.1.0"), ("field_inspector", "2.0.0")]


def register_examples(*, actor: Actor, modules: int | None = None, log=print) -> dict[tuple[str, str], object]:
    from examples.build import DEFAULT_MODULES, applications, build_bundle  # the examples are not a Django app

    found = {}
    for app, app_versions in applications().items():
        for version in app_versions:
            existing = ApplicationVersion.objects.filter(application__name=app, version=version).first()
            if existing is None:
                data = build_bundle(app, version, modules=modules if modules is not None else DEFAULT_MODULES)
                existing = catalog.register_bundle(data=data, actor=actor, source="demo")
                log(f"registered {app} {version}")
            found[(app, version)] = existing
    return found


def configure_mobile_apps(*, actor: Actor, envs: dict[str, Environment], versions) -> None:
    app = versions[("field_inspector", "1.0.0")].application
    for env in envs.values():
        if MobileAppConfig.objects.filter(environment=env, application=app).exists():
            continue
        frontend = env.frontends.filter(enabled=True).order_by("name").first()
        server = (
            frontend.base_url.rstrip("/") if frontend and frontend.base_url else "http://127.0.0.1"
        ) + "/field_inspector"
        save_mobile_config(
            actor=actor,
            environment=env,
            application=app,
            data={"app_identifier": f"com.example.fieldinspector.{env.name.lower()}", "server_url": server},
        )


def seed_deployments(*, envs: dict[str, Environment], versions, log=print, timeout_s: float = 900) -> None:
    """Deploy the baseline through the console's own plans (idempotent: environments that already run
    something, or are held by a plan, are left alone). Needs the stage worker and the agents running."""
    admin = Actor.person(User.objects.get(username="admin"))
    order = [("Test", "Development", OLDER), ("Production", "Development", OLDER), ("Development", "Test", NEWER)]
    for target_name, source_name, wanted in order:
        target = envs[target_name]
        if RunningVersion.objects.filter(environment=target).exists() or moves.holder_of(target.pk):
            continue
        plan = plans.create_plan(
            actor=admin,
            source=envs[source_name],
            target=target,
            operations=[plans.Operation(versions[key].application, versions[key]) for key in wanted],
            notes="Demo baseline",
        )
        log(f"deploying the demo baseline to {target_name} (plan {plan.key})")
        plans.start_plan(actor=admin, plan=plan)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            plan = DeploymentPlan.objects.get(pk=plan.pk)
            if plan.is_prepared:
                plans.continue_plan(actor=admin, plan=plan, override_reason="Demo baseline")
            elif plan.is_final:
                break
            time.sleep(1)
        log(f"{target_name}: {plan.state_label.lower()}")


def reset(*, frontends_root: Path, secrets_dir: Path | None = None, log=print) -> None:
    """Back to before the first ``scripts/up.sh``: the console's database emptied (dropped and
    created again, then migrated by the caller), the demo's application databases and roles dropped,
    the front-ends' folders, the local artifacts and this console's Redis database emptied.
    An object store's artifacts stay: they are named by their content and do no harm."""
    import shutil

    import redis

    console = settings.DATABASES["default"]["NAME"]
    from django.db import connections

    connections.close_all()
    conn = _admin()
    with conn.cursor() as cur:
        for name, _kind, _two, _port in DEMO_ENVIRONMENTS:
            names = demo_names(name)
            cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(names["database"])))
            for role in (names["application"], names["deployer"]):
                cur.execute("select 1 from pg_roles where rolname = %s", [role])
                if cur.fetchone():
                    # Scratch databases a stopped rehearsal left, owned by the role, go first.
                    cur.execute(
                        "select datname from pg_database where datdba = (select oid from pg_roles where rolname = %s)",
                        [role],
                    )
                    for (leftover,) in cur.fetchall():
                        cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(leftover)))
                    cur.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
                    cur.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
            log(f"dropped the application database of {name} and its roles")
        cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(console)))
        cur.execute(sql.SQL("create database {}").format(sql.Identifier(console)))
        log(f"emptied the console's database {console}")
    conn.close()
    if Path(frontends_root).exists():
        shutil.rmtree(frontends_root)
        log(f"removed the front-ends' folders under {frontends_root}")
    if (
        settings.STORAGES["artifacts"]["BACKEND"].endswith("LocalArtifactStorage")
        and Path(settings.ARTIFACT_ROOT).exists()
    ):
        shutil.rmtree(settings.ARTIFACT_ROOT)
        log(f"removed the artifacts under {settings.ARTIFACT_ROOT}")
    if secrets_dir is not None:
        for leftover in list(Path(secrets_dir).glob("agent-*.key")) + list(Path(secrets_dir).glob("*.app.dsn")):
            leftover.unlink()
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    log("emptied this console's Redis database (queued tasks and results)")
