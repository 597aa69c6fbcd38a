"""Demo data: the environments, users and front-ends of the README, created through the services.

Running it twice changes nothing: every piece is looked up by name before it is created.
"""

from __future__ import annotations

import datetime as dt
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


def ensure_app_database(name: str) -> str:
    """Create the environment's application database on the console's server; return its DSN."""
    params = _server_params("postgres")
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    conn.close()
    auth = params["user"] + (f":{params['password']}" if params["password"] else "")
    return f"postgres://{auth}@{params['host']}:{params['port']}/{name}"


def ensure_user(username: str, *, infra_admin: bool = False, staff: bool = False) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username, f"{username}@example.com", DEMO_PASSWORD, is_staff=staff)
    if infra_admin:
        group, _ = Group.objects.get_or_create(name=INFRA_ADMINS_GROUP)
        user.groups.add(group)
    return user


def load_environments(*, frontends_root: Path, log=print) -> dict[str, Environment]:
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
            dsn = ensure_app_database(f"lifetime_app_{name.lower()}")
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
