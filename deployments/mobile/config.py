"""Configuring a mobile application for an environment (LifeTime: before the first deployment there).

The only code that writes MobileAppConfig; each change is audited.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core import audit
from core.actors import Actor
from core.refusals import Refusal
from deployments.models import Application, ApplicationKind, MobileAppConfig
from environments.models import Environment

CONFIG_FIELDS = ("app_identifier", "server_url", "app_version")


class NotMobile(Refusal):
    pass


def save_mobile_config(
    *, actor: Actor, environment: Environment, application: Application, data: dict[str, Any]
) -> MobileAppConfig:
    if application.kind != ApplicationKind.MOBILE:
        raise NotMobile(f"{application.name} is not a mobile application.")
    with transaction.atomic():
        config = (
            MobileAppConfig.objects.select_for_update().filter(environment=environment, application=application).first()
        )
        before = {} if config is None else {name: getattr(config, name) for name in CONFIG_FIELDS}
        if config is None:
            config = MobileAppConfig(environment=environment, application=application)
        for name in CONFIG_FIELDS:
            if name in data:
                setattr(config, name, (data[name] or "").strip())
        config.save()
        audit.record(
            actor=actor,
            action="mobile_app.configured",
            object_type="application",
            object_key=application.key,
            object_label=f"{application.name} on {environment.name}",
            environment_key=environment.key,
            changes=audit.diff(before, {name: getattr(config, name) for name in CONFIG_FIELDS}),
        )
    return config
