"""What a plan will change in its target, before Prepare and after it: per application the running
and the new version, the change logs between them, the SQL (what Prepare generated, with its
estimate; before Prepare the hand-written scripts that may run), the settings it applies, whether
a mobile package will be built; and the front-ends affected."""

from __future__ import annotations

import dataclasses
from typing import Any

from packaging.version import InvalidVersion, Version

from core.durations import seconds_label
from deployments.catalog import settings as app_settings
from deployments.models import (
    ApplicationKind,
    ApplicationVersion,
    DeploymentPlan,
    GeneratedSql,
    OperationKind,
    RunningVersion,
    SettingValue,
)
from deployments.steps.mobile import needs_new_package
from environments.models import FrontEnd


@dataclasses.dataclass
class SettingChange:
    name: str
    type: str
    secret: bool
    shown: str  # never a secret's value
    source: str  # environment, default, missing
    what: str  # "new", "changed", "unchanged", "missing"


@dataclasses.dataclass
class ApplicationChange:
    name: str
    kind: str  # deploy, undeploy
    running: ApplicationVersion | None
    new: ApplicationVersion | None
    change_logs: list[ApplicationVersion]
    sql_generated: bool
    statements: list[dict[str, Any]]
    scripts_that_may_run: list[str]
    sql_typical: str
    sql_pessimistic: str
    warnings: list[str]
    settings: list[SettingChange]
    mobile: str  # "" for a web application, else a sentence

    @property
    def same_version(self) -> bool:
        return self.running is not None and self.new is not None and self.running.pk == self.new.pk


@dataclasses.dataclass
class PlanChanges:
    plan: DeploymentPlan
    prepared: bool
    applications: list[ApplicationChange]
    frontends: list[FrontEnd]

    @property
    def statements(self) -> int:
        return sum(len(a.statements) for a in self.applications)


def _order(version: ApplicationVersion) -> Version:
    try:
        return Version(version.version)
    except InvalidVersion:
        return Version("0")


def versions_between(running: ApplicationVersion | None, new: ApplicationVersion) -> list[ApplicationVersion]:
    """The versions after the running one up to the new one (newest first): their change logs."""
    low = _order(running) if running is not None else None
    high = _order(new)
    found = [
        v
        for v in new.application.versions.all()
        if _order(v) <= high and (low is None or _order(v) > low) and v.pk != (running.pk if running else None)
    ]
    return sorted(found, key=_order, reverse=True)


def _settings(plan: DeploymentPlan, running: RunningVersion | None, new: ApplicationVersion) -> list[SettingChange]:
    before = {s.name for s in app_settings.declared(running.version)} if running else set()
    changed_since = {
        row.name
        for row in SettingValue.objects.filter(environment=plan.target, application=new.application)
        if running is None or row.updated_at > running.since
    }
    out = []
    for view in app_settings.describe(plan.target, new):
        if view.source == "missing":
            what = "missing"
        elif view.name not in before:
            what = "new"
        elif view.name in changed_since:
            what = "changed"
        else:
            what = "unchanged"
        out.append(SettingChange(view.name, view.setting.type, view.setting.secret, view.shown, view.source, what))
    return out


def plan_changes(plan: DeploymentPlan) -> PlanChanges:
    target = plan.target
    running = {
        rv.application_id: rv
        for rv in RunningVersion.objects.filter(environment=target).select_related("version", "application")
    }
    generated = {g.application_id: g for g in GeneratedSql.objects.filter(plan=plan)}
    prepared = bool(generated) or plan.prepared_at is not None
    apps = []
    for op in plan.operations.select_related("application", "version").order_by("application__name"):
        rv = running.get(op.application_id)
        current = rv.version if rv else None
        if op.kind == OperationKind.UNDEPLOY or op.version is None:
            apps.append(
                ApplicationChange(op.application.name, "undeploy", current, None, [], False, [], [], "", "", [], [], "")
            )
            continue
        new = op.version
        g = generated.get(op.application_id)
        statements = list(g.statements) if g else []
        estimate = (g.estimate or {}) if g else {}
        scripts = [] if g else [s["name"] for s in (new.manifest or {}).get("scripts") or ()]
        applied_before = {s["name"] for s in (current.manifest or {}).get("scripts") or ()} if current else set()
        mobile = ""
        if op.application.kind == ApplicationKind.MOBILE:
            mobile = (
                "A new app package will be built for "
                + target.name
                + " (the native shell changed, or it is the first)."
                if needs_new_package(environment=target, version=new)
                else "No new app package: the native shell is the one already built for " + target.name + "."
            )
        apps.append(
            ApplicationChange(
                name=op.application.name,
                kind="deploy",
                running=current,
                new=new,
                change_logs=versions_between(current, new),
                sql_generated=g is not None,
                statements=statements,
                scripts_that_may_run=[s for s in scripts if s not in applied_before],
                sql_typical=seconds_label(estimate["typical_s"]) if "typical_s" in estimate else "",
                sql_pessimistic=seconds_label(estimate["pessimistic_s"]) if "pessimistic_s" in estimate else "",
                warnings=list(g.warnings) if g else [],
                settings=_settings(plan, rv, new),
                mobile=mobile,
            )
        )
    frontends = list(target.frontends.filter(enabled=True).order_by("name"))
    return PlanChanges(plan=plan, prepared=prepared, applications=apps, frontends=frontends)
