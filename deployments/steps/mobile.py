"""Continue's mobile package step, and the check that mobile applications are configured.

A new app package is needed only when the native shell (app id, plugins with their versions)
differs from the one in the last package built for that environment, or when there is none yet:
a change of web code alone reaches the devices through the server, as in OutSystems.
The package is a deterministic zip (fixed timestamps, sorted entries): the same inputs give the
same digest, so the content-addressed store keeps it once.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from deployments.artifacts import store as artifacts
from deployments.models import (
    Application,
    ApplicationKind,
    ApplicationVersion,
    DeploymentPlan,
    MobileAppConfig,
    MobilePackage,
)
from deployments.steps import StepFailed, StepLog
from environments.models import Environment

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
NO_NEW_PACKAGE = "no new app package required"


def native_shell(version: ApplicationVersion) -> dict[str, Any]:
    return dict((version.manifest or {}).get("native") or {})


def native_hash_of(version: ApplicationVersion) -> str:
    """The version's native-shell digest (as the catalog stores it), computed the same way if blank."""
    if version.native_hash:
        return version.native_hash
    canonical = json.dumps(native_shell(version), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def unconfigured_mobile_apps(*, environment: Environment, applications: Iterable[Application]) -> list[str]:
    """For plan validation: one sentence per mobile application with no configuration for the target."""
    mobile = [app for app in applications if app.kind == ApplicationKind.MOBILE]
    configured = set(
        MobileAppConfig.objects.filter(environment=environment, application__in=mobile).values_list(
            "application_id", flat=True
        )
    )
    return [
        f"configure the mobile app {app.name} in {environment.name} first" for app in mobile if app.pk not in configured
    ]


def last_package(*, environment: Environment, application: Application) -> MobilePackage | None:
    return MobilePackage.objects.filter(environment=environment, application=application).first()


def needs_new_package(*, environment: Environment, version: ApplicationVersion) -> bool:
    last = last_package(environment=environment, application=version.application)
    return last is None or last.native_hash != native_hash_of(version)


def package_bytes(*, environment: Environment, version: ApplicationVersion, config: MobileAppConfig) -> bytes:
    """The app package for one environment: its configuration and the native shell to build with."""
    shell = native_shell(version)
    settings_json = {
        "application": version.application.name,
        "environment": environment.name,
        "app_identifier": config.app_identifier,
        "server_url": config.server_url,
        "app_version": config.app_version or version.version,
        "web_version": version.version,
        "native_hash": native_hash_of(version),
    }
    members = {
        "lifetime-mobile.json": json.dumps(settings_json, indent=2, sort_keys=True) + "\n",
        "native-shell.json": json.dumps(shell, indent=2, sort_keys=True) + "\n",
        "www/index.html": (
            f'<!doctype html><meta charset="utf-8"><title>{version.application.name}</title>'
            f"<script>location.replace({json.dumps(config.server_url)})</script>\n"
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, whatever the building machine
            archive.writestr(info, members[name])
    return buffer.getvalue()


def build_mobile_package(
    *,
    environment: Environment,
    version: ApplicationVersion,
    log: StepLog,
    plan: DeploymentPlan | None = None,
) -> MobilePackage | None:
    """Build and keep the app package of a mobile version for an environment, when its native shell
    changed (or it is the first one there); return it, or None when none was needed.

    Raises StepFailed when the application is not configured for the environment.
    """
    application = version.application
    if application.kind != ApplicationKind.MOBILE:
        return None
    config = MobileAppConfig.objects.filter(environment=environment, application=application).first()
    if config is None:
        raise StepFailed(
            f"Cannot build the app package: configure the mobile app {application.name} in {environment.name} first."
        )
    if not needs_new_package(environment=environment, version=version):
        log.info(f"{application.name} {version.version}: {NO_NEW_PACKAGE} (same native shell).")
        return None
    started = time.monotonic()
    data = package_bytes(environment=environment, version=version, config=config)
    sha256, size = artifacts.put_bytes(data)
    with transaction.atomic():
        package = MobilePackage.objects.create(
            environment=environment,
            application=application,
            version=version,
            plan=plan,
            native_hash=native_hash_of(version),
            sha256=sha256,
            size=size,
            app_identifier=config.app_identifier,
            server_url=config.server_url,
            app_version=config.app_version or version.version,
        )
    plugins = ", ".join(f"{k} {v}" for k, v in sorted((native_shell(version).get("plugins") or {}).items()))
    log.info(
        f"{application.name} {version.version}: built the app package for {environment.name} "
        f"({config.app_identifier}, {size} bytes, {time.monotonic() - started:.2f} s; plugins: {plugins or 'none'})."
    )
    return package
