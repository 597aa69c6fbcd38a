"""Actions that change a production environment need a recent authentication.

Deploy Now (a Prepare that runs Continue at once), Continue (also scheduled), Abort and Roll Back on an environment of kind Production: when the user's last password (or single
sign-on) is older than ``REAUTH_MAX_AGE_SECONDS``, the action is not performed; the user is sent
to confirm who they are and comes back to the plan. A forged POST without that changes nothing.

Service accounts (the API) are not asked: a pipeline holds a token, not a person's session; it
only acts where an infra admin granted it the deploy right, and its token is revoked in one click.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from core.reauth import reauthentication_url
from core.session_limits import recently_authenticated
from deployments.models import DeploymentPlan
from environments import access
from environments.models import AccessLevel, EnvironmentKind

View = Callable[..., HttpResponse]


def is_production(plan: DeploymentPlan) -> bool:
    return plan.target.kind == EnvironmentKind.PRODUCTION


def needs_reauthentication(request: HttpRequest, plan: DeploymentPlan) -> bool:
    return is_production(plan) and not recently_authenticated(request)


def recent_authentication_on_production(
    action: str, *, applies: Callable[[DeploymentPlan], bool] | None = None
) -> Callable[[View], View]:
    """Wrap a plan view (``key`` argument): on production, without a recent authentication,
    redirect to the re-authentication page before the view runs."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, key, *args, **kwargs) -> HttpResponse:
            plan = DeploymentPlan.objects.select_related("target").filter(key=key).first()
            # Without the right, the view's own check answers 403 (and audits it): asking for a
            # password first would only tell an intruder that the plan exists.
            if (
                plan is not None
                and (applies is None or applies(plan))
                and access.can(request.user, plan.target, AccessLevel.DEPLOY)
                and needs_reauthentication(request, plan)
            ):
                why = f"{action} on {plan.target.name} changes production."
                back = reverse("deployments:plan", args=[plan.key])
                return HttpResponseRedirect(reauthentication_url(request, back, why))
            return view(request, key, *args, **kwargs)

        return wrapper

    return decorate
