"""Rights of single sign-on users come from their provider groups, at every sign-on.

``OIDC_GROUP_ROLES`` maps groups to rights, rules separated by ``;``::

    lifetime-admins=infra-admin; lifetime-release=*:deploy; lifetime-ops=*:view,Production:view

``*`` is every environment; an environment is named as in the console; levels are view, deploy,
manage. A user's right on an environment is the highest any of their groups gives. The groups are
the source of truth for these accounts: a right the groups no longer give is taken away at the
next sign-on (through the same service as the pages, so every change is an audit row). Local
accounts (break-glass) are never touched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from core import audit
from core.actors import Actor
from environments import access, services
from environments.access import INFRA_ADMINS_GROUP
from environments.models import AccessLevel, Environment

LEVELS = {
    "none": AccessLevel.NONE,
    "view": AccessLevel.VIEW,
    "deploy": AccessLevel.DEPLOY,
    "manage": AccessLevel.MANAGE,
}
ACTOR = Actor.system("single sign-on")


@dataclasses.dataclass(frozen=True)
class GroupRoles:
    infra_admin: bool
    levels: dict[str, int]  # environment name or "*" -> level


def parse(text: str) -> dict[str, GroupRoles]:
    rules: dict[str, GroupRoles] = {}
    for rule in filter(None, (part.strip() for part in text.split(";"))):
        group, equals, grants = rule.partition("=")
        if not equals or not group.strip():
            raise ImproperlyConfigured(f"OIDC_GROUP_ROLES: {rule!r} is not group=rights")
        infra_admin, levels = False, {}
        for grant in filter(None, (g.strip() for g in grants.split(","))):
            if grant == "infra-admin":
                infra_admin = True
                continue
            environment, colon, level = grant.rpartition(":")
            if not colon or level.strip().lower() not in LEVELS or not environment.strip():
                raise ImproperlyConfigured(
                    f"OIDC_GROUP_ROLES: {grant!r} is not infra-admin or Environment:level (view, deploy, manage)"
                )
            levels[environment.strip()] = LEVELS[level.strip().lower()]
        rules[group.strip()] = GroupRoles(infra_admin=infra_admin, levels=levels)
    return rules


def rights_for(groups: list[str], environments: list[Environment]) -> tuple[bool, dict[int, int]]:
    rules = parse(settings.OIDC_GROUP_ROLES)
    infra_admin = False
    levels = {env.pk: int(AccessLevel.NONE) for env in environments}
    for group in groups:
        roles = rules.get(group)
        if roles is None:
            continue
        infra_admin |= roles.infra_admin
        for env in environments:
            level = max(roles.levels.get("*", AccessLevel.NONE), roles.levels.get(env.name, AccessLevel.NONE))
            levels[env.pk] = max(levels[env.pk], int(level))
    return infra_admin, levels


def apply_groups(*, user: Any, groups: list[str]) -> None:
    environments = list(Environment.objects.order_by("order"))
    infra_admin, levels = rights_for(groups, environments)
    with transaction.atomic():
        for env in environments:
            services.set_access(actor=ACTOR, user=user, environment=env, level=levels[env.pk])
        admins, _ = Group.objects.get_or_create(name=INFRA_ADMINS_GROUP)
        member = user.groups.filter(pk=admins.pk).exists()
        if infra_admin != member:
            (user.groups.add if infra_admin else user.groups.remove)(admins)
            audit.record(
                actor=ACTOR,
                action="user.infra_admin_granted" if infra_admin else "user.infra_admin_revoked",
                object_type="user",
                object_key=user.pk,
                object_label=user.username,
                message=f"Provider groups: {', '.join(groups) or 'none'}.",
            )
    access.forget(user)


def on_sso_signed_in(sender: Any, *, user: Any, groups: list[str], **kwargs: Any) -> None:
    apply_groups(user=user, groups=groups)
