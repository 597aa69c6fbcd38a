"""LifeTime's JSON shapes, as plain functions from the console's rows.

Keys are lowercase UUID strings; dates are UTC ``YYYY-MM-DDTHH:MM:SSZ``, and an unset date is
LifeTime's ``1900-01-01T00:00:00`` (clients compare against that literal).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from deployments.models import (
    Application,
    ApplicationKind,
    ApplicationVersion,
    DeploymentPlan,
    LogLine,
    MobilePackage,
    OperationKind,
    RunningVersion,
)
from environments.models import DeploymentZone, Environment
from environments.services import DEFAULT_ZONE_NAME

UNSET_DATE = "1900-01-01T00:00:00"
CONSOLE_VERSION = "0.1.0"
# One deployment zone per environment: its key derives from the environment's, so it is stable
# without a table of its own.
ZONE_NAMESPACE = uuid.UUID("6f1c1b40-8a47-4a4e-9d0b-3c2f1f5f0a11")
FRONTEND_TECHNOLOGY_KEY = uuid.uuid5(ZONE_NAMESPACE, "front-end servers")
LOG_TYPES = {"info": "Info", "warning": "Warning", "error": "Error"}
KINDS = {ApplicationKind.WEB: "WebResponsive", ApplicationKind.MOBILE: "Mobile"}


def key(value: uuid.UUID | None) -> str:
    return str(value).lower() if value else ""


def date(value: dt.datetime | None) -> str:
    if value is None:
        return UNSET_DATE
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_zone_key(environment: Environment) -> str:
    return key(uuid.uuid5(ZONE_NAMESPACE, str(environment.key)))


def environment(env: Environment, *, frontends: int, details_url: str) -> dict[str, Any]:
    return {
        "Key": key(env.key),
        "Name": env.name,
        "OSVersion": CONSOLE_VERSION,
        "Order": env.order,
        "DetailsURL": details_url,
        "HostName": env.hostname,
        "UseHTTPS": env.use_https,
        "EnvironmentType": env.kind,
        "NumberOfFrontEnds": frontends,
        "ApplicationServerType": "Python",
        "ApplicationServer": "WSGI",
        "DatabaseProvider": "PostgreSQL",
        "IsCloudEnvironment": False,
    }


def deployment_zone(env: Environment) -> dict[str, Any]:
    return {
        "Key": default_zone_key(env),
        "Name": DEFAULT_ZONE_NAME,
        "IsDefault": True,
        "DeploymentTechnology": {"Key": key(FRONTEND_TECHNOLOGY_KEY), "Name": "Front-end servers"},
    }


def named_zone(zone: DeploymentZone) -> dict[str, Any]:
    return {
        "Key": key(zone.key),
        "Name": zone.name,
        "IsDefault": False,
        "DeploymentTechnology": {"Key": key(FRONTEND_TECHNOLOGY_KEY), "Name": "Front-end servers"},
    }


def app_status_in_env(running: RunningVersion, *, packages: list[MobilePackage]) -> dict[str, Any]:
    env = running.environment
    mobile = []
    if running.application.kind == ApplicationKind.MOBILE:
        package = next((p for p in packages if p.version_id == running.version_id), None)
        # One package per environment, not one per store platform: NativePlatform stays empty.
        mobile.append(
            {
                "EnvironmentKey": key(env.key),
                "NativePlatform": "",
                "VersionNumber": (package.app_version if package else "") or running.version.version,
                "HasBinaryAvailable": package is not None,
                "IsConfigured": package is not None,
                "IsConfigurationChanged": False,
                "IsModified": False,
            }
        )
    return {
        "EnvironmentKey": key(env.key),
        "BaseApplicationVersionKey": key(running.version.key),
        "BaseApplicationVersionLabel": running.version.version,
        "IsModified": running.is_modified,
        "MobileAppsStatus": mobile,
        "DeploymentZoneKey": default_zone_key(env),
        "ConsistencyStatus": "OK",
    }


def application(
    app: Application,
    *,
    statuses: list[dict[str, Any]] | None = None,
    include_modules: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Key": key(app.key),
        "Name": app.name,
        "Kind": KINDS.get(app.kind, "WebResponsive"),
        "Team": app.team,
        "Description": app.description,
        "URLPath": app.url_path,
        "IsSystem": False,
    }
    if statuses is not None:
        data["AppStatusInEnvs"] = statuses
    if include_modules:
        # The console deploys applications whole: there are no modules to list.
        data["AppModules"] = []
    return data


def application_version(version: ApplicationVersion, *, in_use: bool) -> dict[str, Any]:
    return {
        "Key": key(version.key),
        "ApplicationKey": key(version.application.key),
        "Version": version.version,
        "ChangeLog": version.change_log,
        "CreatedOn": date(version.created_at),
        "InUse": in_use,
        "MobileVersions": [],
        "NativeHash": version.native_hash,
    }


def _who(user: Any) -> tuple[str, str]:
    if user is None:
        return "", ""
    return (user.get_full_name() or user.username), user.username


def deployment(plan: DeploymentPlan) -> dict[str, Any]:
    created_by, created_by_username = _who(plan.created_by)
    started_by, started_by_username = _who(plan.started_by)
    aborted_by, aborted_by_username = _who(plan.aborted_by)
    zone = default_zone_key(plan.target)
    return {
        "Key": key(plan.key),
        "SourceEnvironmentKey": key(plan.source.key),
        "TargetEnvironmentKey": key(plan.target.key),
        "Notes": plan.notes,
        "CreatedOn": date(plan.created_at),
        "CreatedBy": created_by,
        "CreatedByUsername": created_by_username,
        "SavedOn": date(plan.saved_at),
        "SavedBy": created_by,
        "SavedByUsername": created_by_username,
        "StartedOn": date(plan.started_at),
        "StartedBy": started_by,
        "StartedByUsername": started_by_username,
        "AbortedOn": date(plan.aborted_at),
        "AbortedBy": aborted_by,
        "AbortedByUsername": aborted_by_username,
        "ApplicationOperations": [
            {
                "ApplicationKey": key(op.application.key),
                "ApplicationVersionKey": key(op.version.key) if op.version else "",
                "DeploymentOperation": f"Deploy {op.version.version}"
                if op.kind == OperationKind.DEPLOY and op.version
                else f"Undeploy {op.application.name}",
                "DeploymentZoneKey": key(op.zone.key) if op.zone else zone,
            }
            for op in plan.operations.all()
        ],
    }


def deployment_details(
    plan: DeploymentPlan, *, running: dict[int, RunningVersion], conflicts: list[str]
) -> dict[str, Any]:
    """D3: the plan, what it deploys (new or not in the target), what it redeploys, its conflicts."""
    to_deploy, to_redeploy = [], []
    for op in plan.operations.all():
        if op.kind != OperationKind.DEPLOY or op.version is None:
            continue
        current = running.get(op.application_id)
        if current is not None and current.version_id == op.version_id:
            to_redeploy.append(key(op.application.key))
        else:
            to_deploy.append(
                {
                    "ApplicationKey": key(op.application.key),
                    "ApplicationName": op.application.name,
                    "IsNew": current is None,
                }
            )
    return {
        "Deployment": deployment(plan),
        "ApplicationsToDeploy": to_deploy,
        "ApplicationsToRedeploy": to_redeploy,
        "ApplicationConflicts": [{"Message": message} for message in conflicts],
        "ModulesToDelete": [],
    }


def deployment_status(
    plan: DeploymentPlan,
    *,
    log: list[LogLine],
    continue_estimate: dict[str, Any] | None = None,
    approvals: dict[str, Any] | None = None,
) -> dict[str, Any]:
    extension: dict[str, Any] = {"ContinueEstimate": continue_estimate} if continue_estimate is not None else {}
    if approvals is not None:
        extension["Approvals"] = approvals
    return {
        **extension,
        "DeploymentStatus": plan.api_status,
        # LifeTime: Info explains a needs_user_intervention and is "" for every other status.
        "Info": plan.api_info,
        "DeploymentLog": [
            {"Instant": date(line.at), "Message": line.message, "Type": LOG_TYPES.get(line.level, "Info")}
            for line in log
        ],
    }


def frontend(fe: Any) -> dict[str, Any]:
    """A front-end and its drift (the console's extension: LifeTime has no such resource)."""
    return {
        "Key": key(fe.key),
        "Name": fe.name,
        "Enabled": fe.enabled,
        "LastSeen": date(fe.last_seen_at),
        "IsDrifted": bool(fe.drift),
        "DriftSince": date(fe.drift_since),
        "Drift": [
            {"Application": d["application"], "Recorded": d["recorded"] or "", "Actual": d["actual"] or ""}
            for d in fe.drift or []
        ],
    }
