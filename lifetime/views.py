from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core import service_accounts
from core.actors import Actor
from core.models import ServiceAccount
from environments import services as env_services
from environments.access import is_infra_admin
from environments.models import AccessLevel, Environment, EnvironmentAccess
from lifetime.forms import ServiceAccountForm

# --- service accounts (API clients) ---------------------------------------------------------


def _require_infra_admin(request: HttpRequest) -> None:
    if not is_infra_admin(request.user):
        raise PermissionDenied("Only infra admins manage service accounts.")


@login_required
def service_account_list(request: HttpRequest) -> HttpResponse:
    _require_infra_admin(request)
    accounts = list(
        ServiceAccount.objects.select_related("user", "created_by").order_by("revoked_at", "user__username")
    )
    rights: dict[int, list[str]] = {}
    for grant in EnvironmentAccess.objects.filter(user__in=[a.user for a in accounts]).select_related("environment"):
        rights.setdefault(grant.user_id, []).append(f"{grant.get_level_display()} on {grant.environment.name}")
    rows = [(account, rights.get(account.user_id, [])) for account in accounts]
    return render(request, "service_accounts/list.html", {"rows": rows})


@login_required
def service_account_create(request: HttpRequest) -> HttpResponse:
    _require_infra_admin(request)
    environments = list(Environment.objects.order_by("order"))
    form = ServiceAccountForm(request.POST or None, environments=environments)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                account, token = service_accounts.create_service_account(
                    actor=Actor.person(request.user),
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                )
                for environment, level in form.rights().items():
                    if level != AccessLevel.NONE:
                        env_services.set_access(
                            actor=Actor.person(request.user), user=account.user, environment=environment, level=level
                        )
        except service_accounts.ServiceAccountRefused as exc:
            form.add_error("name", str(exc))
        else:
            # Shown in this answer only: it is not stored in clear anywhere, and no redirect
            # carries it through a session.
            response = render(request, "service_accounts/created.html", {"account": account, "token": token})
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "service_accounts/form.html", {"form": form})


@login_required
@require_POST
def service_account_revoke(request: HttpRequest, key) -> HttpResponse:
    _require_infra_admin(request)
    account = get_object_or_404(ServiceAccount.objects.select_related("user"), key=key)
    service_accounts.revoke_service_account(actor=Actor.person(request.user), account=account)
    messages.success(request, f"The token of {account.user.username} is revoked: the API refuses it from now on.")
    return redirect("service_accounts:list")
