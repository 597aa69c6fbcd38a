"""Who may do what on which environment. Views, the API and tasks all ask here."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Subquery

from environments.models import AccessLevel, Environment, EnvironmentAccess

INFRA_ADMINS_GROUP = "Infra admins"


def is_infra_admin(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    cached = getattr(user, "_lifetime_infra_admin", None)
    if cached is None:
        cached = user.is_superuser or user.groups.filter(name=INFRA_ADMINS_GROUP).exists()
        user._lifetime_infra_admin = cached
    return cached


def levels_for(user: Any) -> dict[int, int]:
    """``{environment id: level}`` for every environment, computed once per request/user object."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return {}
    cached = getattr(user, "_lifetime_levels", None)
    if cached is not None:
        return cached
    admin = getattr(user, "_lifetime_infra_admin", None)
    if admin is None and user.is_superuser:
        admin = user._lifetime_infra_admin = True
    if admin:
        levels = {pk: AccessLevel.MANAGE for pk in Environment.objects.values_list("pk", flat=True)}
    else:
        # One query for what every page and poll asks first: is the user an infra admin, and
        # their level on each environment (the group membership is the same on every row).
        rows = list(
            Environment.objects.annotate(
                admin=Exists(Group.objects.filter(name=INFRA_ADMINS_GROUP, user=user.pk)),
                level=Subquery(
                    EnvironmentAccess.objects.filter(user=user.pk, environment=OuterRef("pk")).values("level")[:1]
                ),
            ).values_list("pk", "admin", "level")
        )
        if rows:
            user._lifetime_infra_admin = rows[0][1]
        if rows and rows[0][1]:
            levels = {pk: AccessLevel.MANAGE for pk, _, _ in rows}
        else:
            levels = {pk: level for pk, _, level in rows if level is not None}
    user._lifetime_levels = levels
    return levels


def level_for(user: Any, environment: Environment | int) -> int:
    env_id = environment if isinstance(environment, int) else environment.pk
    return levels_for(user).get(env_id, AccessLevel.NONE)


def can(user: Any, environment: Environment | int, level: int) -> bool:
    return level_for(user, environment) >= level


class EnvironmentRefused(PermissionDenied):
    """A refusal that names its environment, so that the audit row of the refusal can too."""

    def __init__(self, message: str, *, environment_key: Any = None) -> None:
        super().__init__(message)
        self.environment_key = environment_key


def require(user: Any, environment: Environment | int, level: int) -> None:
    if not can(user, environment, level):
        if isinstance(environment, Environment):
            name, key = environment.name, environment.key
        else:
            name, key = f"environment {environment}", None
        raise EnvironmentRefused(f"You need the {AccessLevel(level).label} right on {name}.", environment_key=key)


def visible_environments(user: Any):
    """Environments the user may at least view, in promotion order."""
    ids = [pk for pk, level in levels_for(user).items() if level >= AccessLevel.VIEW]
    return Environment.objects.filter(pk__in=ids).order_by("order")


def forget(user: Any) -> None:
    """Drop the cached rights on a user object (after a role change)."""
    for attr in ("_lifetime_levels", "_lifetime_infra_admin"):
        if hasattr(user, attr):
            delattr(user, attr)
