"""The mobile apps of an environment: their configuration (manage right) and their app packages
(view right), built by Continue's mobile package step."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from core.actors import Actor
from deployments.artifacts import store as artifacts
from deployments.mobile.config import save_mobile_config
from deployments.models import Application, ApplicationKind, MobileAppConfig, MobilePackage
from environments import access
from environments.forms import http_urls
from environments.models import AccessLevel, Environment


class MobileAppConfigForm(forms.ModelForm):
    class Meta:
        formfield_callback = http_urls
        model = MobileAppConfig
        fields = ["app_identifier", "server_url", "app_version"]
        labels = {
            "app_identifier": "App identifier",
            "server_url": "Server URL",
            "app_version": "App version",
        }
        help_texts = {
            "app_identifier": "As in the stores, e.g. com.example.fieldinspector.test",
            "server_url": "Where the app finds this environment's server.",
        }


def _environment_for(request: HttpRequest, key, level: int) -> Environment:
    environment = get_object_or_404(Environment, key=key)
    if not access.can(request.user, environment, AccessLevel.VIEW):
        raise PermissionDenied("You have no access to this environment.")
    access.require(request.user, environment, level)
    return environment


@login_required
def mobile_apps(request: HttpRequest, key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.VIEW)
    configs = {c.application_id: c for c in MobileAppConfig.objects.filter(environment=environment)}
    packages: dict[int, list[MobilePackage]] = {}
    for package in MobilePackage.objects.filter(environment=environment).select_related("version"):
        packages.setdefault(package.application_id, []).append(package)
    rows = [
        (app, configs.get(app.pk), packages.get(app.pk, [])[:5])
        for app in Application.objects.filter(kind=ApplicationKind.MOBILE).order_by("name")
    ]
    return render(
        request,
        "deployments/mobile_apps.html",
        {
            "environment": environment,
            "rows": rows,
            "can_manage": access.can(request.user, environment, AccessLevel.MANAGE),
        },
    )


@login_required
def configure_mobile_app(request: HttpRequest, key, app_key) -> HttpResponse:
    environment = _environment_for(request, key, AccessLevel.MANAGE)
    application = get_object_or_404(Application, key=app_key, kind=ApplicationKind.MOBILE)
    config = MobileAppConfig.objects.filter(environment=environment, application=application).first()
    form = MobileAppConfigForm(request.POST or None, instance=config)
    if request.method == "POST" and form.is_valid():
        save_mobile_config(
            actor=Actor.person(request.user), environment=environment, application=application, data=form.cleaned_data
        )
        messages.success(request, f"Mobile app {application.name} configured for {environment.name}.")
        return redirect("mobile:apps", key=environment.key)
    return render(
        request,
        "deployments/mobile_config_form.html",
        {"form": form, "environment": environment, "application": application},
    )


@login_required
def download_package(request: HttpRequest, key, package_id: int) -> FileResponse:
    environment = _environment_for(request, key, AccessLevel.VIEW)
    package = get_object_or_404(
        MobilePackage.objects.select_related("application", "version"), pk=package_id, environment=environment
    )
    try:
        size = artifacts.size_of(package.sha256)
        blob = artifacts.open_blob(package.sha256)
    except artifacts.ArtifactMissing:
        raise Http404("This app package is no longer in the artifact store.") from None
    response = FileResponse(blob, as_attachment=True, filename=package.file_name, content_type="application/zip")
    # Announced, so that a package whose digest fails at its end (cut short) is seen as incomplete.
    response["Content-Length"] = str(size)
    return response
