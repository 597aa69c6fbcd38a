"""Prepare's validate step, also LifeTime's Validate Now: the versions exist, the dependencies
between applications hold in the target after the plan, mobile applications are configured there."""

from __future__ import annotations

import dataclasses

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from deployments.catalog import settings as app_settings
from deployments.models import (
    Application,
    ApplicationKind,
    ApplicationVersion,
    DeploymentPlan,
    MobileAppConfig,
    OperationKind,
    RunningVersion,
)


@dataclasses.dataclass
class Suggestion:
    application: Application
    version: ApplicationVersion
    reason: str


@dataclasses.dataclass
class Validation:
    errors: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    suggestions: list[Suggestion] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def dependencies_of(version: ApplicationVersion | None) -> list[tuple[str, str]]:
    """``[(application name, PEP 440 specifier)]`` from the manifest."""
    return version.dependencies if version is not None else []


def _satisfies(version: str, spec: str) -> bool:
    try:
        return Version(version) in SpecifierSet(spec or "")
    except (InvalidVersion, InvalidSpecifier):
        return False


def validate_plan(plan: DeploymentPlan) -> Validation:
    """LifeTime's Validate: versions exist, dependencies hold in the target after the plan, mobile apps configured."""
    result = Validation()
    operations = list(plan.operations.select_related("application", "version"))
    if not operations:
        result.errors.append("Add at least one application to deploy.")
        return result
    running = {
        rv.application.name: rv
        for rv in RunningVersion.objects.filter(environment=plan.target).select_related("application", "version")
    }
    after: dict[str, str] = {name: rv.version.version for name, rv in running.items()}
    for op in operations:
        if op.kind == OperationKind.UNDEPLOY:
            after.pop(op.application.name, None)
        elif op.version is None:
            result.errors.append(f"{op.application.name}: the version to deploy no longer exists.")
        else:
            after[op.application.name] = op.version.version
    source_running = {
        rv.application.name: rv
        for rv in RunningVersion.objects.filter(environment=plan.source).select_related("application", "version")
    }
    for op in operations:
        if op.version is None:
            continue
        current = running.get(op.application.name)
        if current and current.version_id == op.version_id:
            result.warnings.append(
                f"{op.application.name} {op.version.version} already runs in {plan.target.name}: it will be redeployed."
            )
        for dep_name, spec in dependencies_of(op.version):
            have = after.get(dep_name)
            if have is not None and _satisfies(have, spec):
                continue
            need = f"{dep_name} {spec}".strip()
            message = (
                f"{op.application.name} {op.version.version} needs {need}, but {plan.target.name} "
                + (f"would run {dep_name} {have}" if have else f"would not run {dep_name}")
                + " after this plan."
            )
            result.errors.append(message)
            producer = source_running.get(dep_name)
            if producer and _satisfies(producer.version.version, spec):
                result.suggestions.append(
                    Suggestion(producer.application, producer.version, f"add {dep_name} {producer.version.version}")
                )
        # Settings: every required one valued in the target, each value of its type.
        result.errors.extend(app_settings.problems(plan.target, op.version))
        if op.application.kind == ApplicationKind.MOBILE:
            if not MobileAppConfig.objects.filter(environment=plan.target, application=op.application).exists():
                result.errors.append(f"configure the mobile app {op.application.name} in {plan.target.name} first")
    # An application undeployed while another one needs it.
    for op in operations:
        if op.kind != OperationKind.UNDEPLOY:
            continue
        for name, rv in running.items():
            if name in after and any(dep == op.application.name for dep, _ in dependencies_of(rv.version)):
                result.errors.append(f"{name} needs {op.application.name}: it cannot be undeployed.")
    return result
