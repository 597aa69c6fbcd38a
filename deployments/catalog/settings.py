"""Applications' settings per environment: what a version's manifest declares (``[settings]``), the
values people with the manage right set per environment, and what a deployment applies.

A secret value is encrypted at rest (core encryption) and write-only: pages, logs, the audit trail
and the API only ever say whether it is set. ``resolve()`` is the one place that decrypts, for the
front-ends of that environment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import transaction

from core import audit, encryption
from core.actors import Actor
from core.refusals import NotFound, Refusal
from deployments.catalog.bundles import Setting, parse_setting_value, setting_value_fits
from deployments.models import Application, ApplicationVersion, RunningVersion, SettingValue
from environments import access
from environments.models import AccessLevel, Environment

HIDDEN = "••••••"


class SettingRefused(Refusal):
    """A value that does not fit its setting (type), or a setting the application does not declare."""


def declared(version: ApplicationVersion | None) -> list[Setting]:
    """The settings a version's manifest declares, by name."""
    if version is None:
        return []
    return [Setting(**s) for s in (version.manifest or {}).get("settings") or ()]


def declaring_version(environment: Environment, application: Application) -> ApplicationVersion | None:
    """The version whose declarations the settings page shows: the one running there, else the newest."""
    running = RunningVersion.objects.filter(environment=environment, application=application).select_related("version")
    row = running.first()
    if row is not None and declared(row.version):
        return row.version
    return application.versions.order_by("-created_at", "-id").first()


@dataclasses.dataclass(frozen=True)
class SettingView:
    """One setting as people see it for an environment: never a secret's value."""

    setting: Setting
    source: str  # "environment", "default" or "missing"
    shown: str  # the value as text, HIDDEN for a secret that is set, "" when missing
    value: Any = None  # the value itself; None for a secret

    @property
    def name(self) -> str:
        return self.setting.name


def _stored(environment: Environment, application: Application) -> dict[str, SettingValue]:
    return {row.name: row for row in SettingValue.objects.filter(environment=environment, application=application)}


def describe(environment: Environment, version: ApplicationVersion) -> list[SettingView]:
    """What each declared setting of ``version`` will be in ``environment`` (secrets hidden)."""
    stored = _stored(environment, version.application)
    views = []
    for setting in declared(version):
        row = stored.get(setting.name)
        if row is not None and (row.value_encrypted if row.secret else row.value is not None):
            if setting.secret or row.secret:
                views.append(SettingView(setting, "environment", HIDDEN))
            else:
                views.append(SettingView(setting, "environment", _text(row.value), row.value))
        elif setting.default is not None:
            views.append(SettingView(setting, "default", _text(setting.default), setting.default))
        else:
            views.append(SettingView(setting, "missing", ""))
    return views


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def problems(environment: Environment, version: ApplicationVersion) -> list[str]:
    """Why ``version`` cannot run with the settings of ``environment`` (Prepare's check): a required
    setting without a value, a value of another type (the setting's type changed), a secret set in
    clear or a clear value kept as a secret."""
    stored = _stored(environment, version.application)
    found = []
    label = f"{version.application.name} {version.version}"
    for setting in declared(version):
        row = stored.get(setting.name)
        if row is None:
            if setting.required:
                found.append(f"{label}: the setting {setting.name} has no value in {environment.name}")
            continue
        if setting.secret != row.secret:
            found.append(
                f"{label}: the setting {setting.name} is {'now' if setting.secret else 'no longer'} a secret; "
                f"set it again in {environment.name}"
            )
        elif not setting.secret and not setting_value_fits(setting.type, row.value):
            found.append(
                f"{label}: the value of {setting.name} in {environment.name} is not a {setting.type}; set it again"
            )
    return found


def resolve(environment: Environment, version: ApplicationVersion) -> dict[str, Any]:
    """Every declared setting's value in ``environment``, secrets decrypted: for its front-ends only."""
    stored = _stored(environment, version.application)
    values: dict[str, Any] = {}
    for setting in declared(version):
        row = stored.get(setting.name)
        if row is not None and row.secret and row.value_encrypted:
            values[setting.name] = parse_setting_value(setting.type, encryption.decrypt(row.value_encrypted))
        elif row is not None and not row.secret and row.value is not None:
            values[setting.name] = row.value
        elif setting.default is not None:
            values[setting.name] = setting.default
    return values


def set_value(*, actor: Actor, environment: Environment, application: Application, name: str, raw: str) -> SettingValue:
    """Set one setting's value in one environment (the manage right there). An empty value clears
    it (the default applies again, or it is missing). Audited, never with a secret's value."""
    if not actor.is_system:
        access.require(actor.user, environment, AccessLevel.MANAGE)
    version = declaring_version(environment, application)
    setting = next((s for s in declared(version) if s.name == name), None)
    if setting is None:
        raise NotFound(f"{application.name} declares no setting {name!r}.")
    changes: dict[str, Any]
    with transaction.atomic():
        if raw == "":
            SettingValue.objects.filter(environment=environment, application=application, name=name).delete()
            changes = {"setting": name, "value": "cleared"}
            row = SettingValue(environment=environment, application=application, name=name)
        else:
            try:
                value = parse_setting_value(setting.type, raw)
            except ValueError as exc:
                raise SettingRefused(f"{name} {exc}.") from None
            defaults: dict[str, Any] = {"secret": setting.secret, "updated_by": actor.user}
            if setting.secret:
                defaults |= {"value": None, "value_encrypted": encryption.encrypt(_text(value))}
                changes = {"setting": name, "value": "(secret changed)"}
            else:
                defaults |= {"value": value, "value_encrypted": ""}
                changes = {"setting": name, "value": _text(value)}
            row, _ = SettingValue.objects.update_or_create(
                environment=environment, application=application, name=name, defaults=defaults
            )
        audit.record(
            actor=actor,
            action="setting.set",
            object_type="setting",
            object_key=f"{application.key}"[:64],
            object_label=f"{application.name}.{name} in {environment.name}",
            environment_key=environment.key,
            changes=changes,
        )
    return row
