from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.actors import Actor
from core.models import AuditEvent
from environments import access, services
from environments.forms import DeploymentZoneForm, EnvironmentForm, FreezeForm, FrontEndForm, WindowForm
from environments.models import AccessLevel, DeploymentWindow, DeploymentZone, Environment, Freeze, FrontEnd


def _environment_for(request: HttpRequest, key, level: int) -> Environment:
    environment = get_object_or_404(Environment, key=key)
    if not access.can(request.user, environment, AccessLevel.VIEW):
        # Do not reveal environments the user cannot see.
        raise PermissionDenied("You have no access to this environment.")
    access.require(request.user, environment, level)
    return environment


def _apply_service_error(form, exc: services.InvalidInput) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


@login_required
def environment_list(request: HttpRequest) -> HttpResponse:
    environments = access.visible_environments(request.user).prefetch_related("frontends")
    levels = access.levels_for(request.user)
    rows = [(env, levels.get(env.pk, 0) >= AccessLevel.MANAGE) for env in environments]
    return render(request, "environments/list.html", {"rows": rows})


@login_required
def environment_detail(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.VIEW)
    can_manage = access.can(request.user, environment, AccessLevel.MANAGE)
    events = AuditEvent.objects.filter(environment_key=environment.key)[:50]
    return render(
        request,
        "environments/detail.html",
        {
            "environment": environment,
            "frontends": environment.frontends.all(),
            "zones": environment.zones.prefetch_related("frontends").order_by("name"),
            "can_manage": can_manage,
            "events": events,
            "windows": environment.windows.all(),
            "freezes": environment.freezes.all(),
            "next_window": environment.next_window_outside_freezes(),
            "freeze": environment.freeze_at(),
            "now": timezone.now(),
            "window_form": WindowForm() if can_manage else None,
            "freeze_form": FreezeForm() if can_manage else None,
        },
    )


def _form_errors(form) -> str:
    return " ".join(
        f"{'' if field == '__all__' else field + ': '}{' '.join(errs)}" for field, errs in form.errors.items()
    )


@login_required
@require_POST
def window_add(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    form = WindowForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("environments:detail", key=key)
    try:
        services.add_window(
            actor=Actor.person(request.user),
            environment=environment,
            days=form.cleaned_data["days"],
            start=form.cleaned_data["start"],
            minutes=form.cleaned_data["minutes"],
            timezone_name=form.cleaned_data["timezone"],
        )
    except services.InvalidInput as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Window added.")
    return redirect("environments:detail", key=key)


@login_required
@require_POST
def window_delete(request: HttpRequest, key, pk: int) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    window = get_object_or_404(DeploymentWindow, pk=pk, environment=environment)
    services.delete_window(actor=Actor.person(request.user), window=window)
    messages.success(request, "Window removed.")
    return redirect("environments:detail", key=key)


@login_required
@require_POST
def freeze_add(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    form = FreezeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("environments:detail", key=key)
    data = form.cleaned_data
    try:
        services.add_freeze(
            actor=Actor.person(request.user),
            environment=environment,
            reason=data["reason"],
            starts_at=data.get("starts_at"),
            ends_at=data.get("ends_at"),
            weekday=data.get("weekday"),
            week=data.get("week"),
            timezone_name=data["timezone"],
        )
    except services.InvalidInput as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Freeze added.")
    return redirect("environments:detail", key=key)


@login_required
@require_POST
def freeze_delete(request: HttpRequest, key, freeze_key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    freeze = get_object_or_404(Freeze, key=freeze_key, environment=environment)
    services.delete_freeze(actor=Actor.person(request.user), freeze=freeze)
    messages.success(request, "Freeze removed.")
    return redirect("environments:detail", key=key)


@login_required
def environment_create(request: HttpRequest) -> HttpResponse:
    if not access.is_infra_admin(request.user):
        raise PermissionDenied("Only infra admins create environments.")
    last = Environment.objects.order_by("-order").first()
    # A new environment goes at the end of the promotion path: there it deploys only what runs
    # in the environment before it, unless the admin unticks it.
    initial = {"order": last.order + 1, "only_versions_running_in_source": True} if last else {}
    form = EnvironmentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            environment = services.save_environment(
                actor=Actor.person(request.user),
                data=form.environment_data(),
                app_db_dsn=form.app_db_change(),
                confirm_privileged_role=form.cleaned_data.get("confirm_privileged_role", False),
            )
        except services.InvalidInput as exc:
            _apply_service_error(form, exc)
        else:
            messages.success(request, f"Environment {environment.name} created.")
            return redirect("environments:detail", key=environment.key)
    return render(request, "environments/form.html", {"form": form, "environment": None})


@login_required
def environment_edit(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    form = EnvironmentForm(request.POST or None, instance=Environment.objects.get(pk=environment.pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.save_environment(
                actor=Actor.person(request.user),
                environment=environment,
                data=form.environment_data(),
                app_db_dsn=form.app_db_change(),
                confirm_privileged_role=form.cleaned_data.get("confirm_privileged_role", False),
            )
        except services.InvalidInput as exc:
            _apply_service_error(form, exc)
        else:
            messages.success(request, f"Environment {form.cleaned_data['name']} saved.")
            return redirect("environments:detail", key=environment.key)
    return render(request, "environments/form.html", {"form": form, "environment": environment})


@login_required
@require_POST
def test_connection(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    typed = (request.POST.get("app_db_dsn") or "").strip()
    if typed and not access.is_infra_admin(request.user):
        # Trying any address from the console's network is a port scanner: only for infra admins.
        check = services.ConnectionCheck(
            False, "Only infra admins test a connection before it is saved: save it, then test the saved one."
        )
    elif typed:
        check = services.check_connection(typed, environment=environment)
    elif environment.has_app_db:
        check = services.check_connection(environment.app_db_dsn(), environment=environment)
    else:
        check = services.ConnectionCheck(False, "No connection string: type one, or save one first.")
    return render(request, "environments/_connection_check.html", {"check": check})


@login_required
def frontend_create(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    form = FrontEndForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            frontend = services.save_frontend(
                actor=Actor.person(request.user), environment=environment, data=form.cleaned_data
            )
        except services.InvalidInput as exc:
            _apply_service_error(form, exc)
        else:
            return _show_agent_key(request, frontend, frontend.agent_key(), created=True)
    return render(request, "environments/frontend_form.html", {"form": form, "environment": environment})


def _show_agent_key(request: HttpRequest, frontend: FrontEnd, key: str, *, created: bool) -> HttpResponse:
    # Shown in this answer only: it is kept encrypted, never shown again, and no redirect carries it
    # through a session.
    response = render(
        request,
        "environments/frontend_key.html",
        {"frontend": frontend, "environment": frontend.environment, "key": key, "created": created},
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def frontend_new_key(request: HttpRequest, key) -> HttpResponse:
    frontend = get_object_or_404(FrontEnd.objects.select_related("environment"), key=key)
    _environment_for(request, frontend.environment.key, AccessLevel.MANAGE)
    agent_key = services.new_agent_key(actor=Actor.person(request.user), frontend=frontend)
    return _show_agent_key(request, frontend, agent_key, created=False)


@login_required
def frontend_edit(request: HttpRequest, key) -> HttpResponse:
    frontend = get_object_or_404(FrontEnd.objects.select_related("environment"), key=key)
    environment = _environment_for(request, frontend.environment.key, AccessLevel.MANAGE)
    form = FrontEndForm(request.POST or None, instance=FrontEnd.objects.get(pk=frontend.pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.save_frontend(
                actor=Actor.person(request.user), environment=environment, frontend=frontend, data=form.cleaned_data
            )
        except services.InvalidInput as exc:
            _apply_service_error(form, exc)
        else:
            messages.success(request, f"Front-end {form.cleaned_data['name']} saved.")
            return redirect("environments:detail", key=environment.key)
    return render(
        request, "environments/frontend_form.html", {"form": form, "environment": environment, "frontend": frontend}
    )


@login_required
@require_POST
def frontend_set_enabled(request: HttpRequest, key) -> HttpResponse:
    frontend = get_object_or_404(FrontEnd.objects.select_related("environment"), key=key)
    _environment_for(request, frontend.environment.key, AccessLevel.MANAGE)
    enabled = request.POST.get("enabled") == "true"
    services.set_frontend_enabled(actor=Actor.person(request.user), frontend=frontend, enabled=enabled)
    messages.success(request, f"Front-end {frontend.name} {'enabled' if enabled else 'disabled'}.")
    return redirect("environments:detail", key=frontend.environment.key)


@login_required
def zone_form(request: HttpRequest, key, zone_key=None) -> HttpResponse:
    """Create (``zone_key`` None) or change a deployment zone of the environment."""
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    zone = get_object_or_404(DeploymentZone, key=zone_key, environment=environment) if zone_key else None
    initial = {"name": zone.name, "frontends": list(zone.frontends.all())} if zone else None
    form = DeploymentZoneForm(request.POST or None, initial=initial, environment=environment)
    if request.method == "POST" and form.is_valid():
        try:
            services.save_zone(
                actor=Actor.person(request.user),
                environment=environment,
                name=form.cleaned_data["name"],
                frontends=list(form.cleaned_data["frontends"]),
                zone=zone,
            )
        except services.InvalidInput as exc:
            _apply_service_error(form, exc)
        else:
            messages.success(request, f"Deployment zone {form.cleaned_data['name']} saved.")
            return redirect("environments:detail", key=environment.key)
    return render(request, "environments/zone_form.html", {"form": form, "environment": environment, "zone": zone})


@login_required
@require_POST
def zone_delete(request: HttpRequest, key, zone_key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    zone = get_object_or_404(DeploymentZone, key=zone_key, environment=environment)
    try:
        services.delete_zone(actor=Actor.person(request.user), zone=zone)
    except services.InvalidInput as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Deployment zone {zone.name} deleted.")
    return redirect("environments:detail", key=environment.key)
