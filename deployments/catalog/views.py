"""Pages of the applications catalog: applications, their versions, a version's content, upload."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from core.actors import Actor
from core.refusals import Refusal
from core.request_limits import accepts_upload
from deployments.catalog import services as catalog
from deployments.catalog import settings as app_settings
from deployments.catalog.bundles import MAX_ARCHIVE_BYTES, BundleRefused, manifest_from_json
from deployments.models import Application, ApplicationVersion, RunningVersion
from deployments.statements import scripts as script_analysis
from deployments.statements.parse import COST_LABELS, FLAG_LABELS, blocks
from environments import access
from environments.models import AccessLevel, Environment


class BundleUploadForm(forms.Form):
    bundle = forms.FileField(help_text="A zip or tar.gz archive with lifetime.toml at its root.")

    def clean_bundle(self):
        upload = self.cleaned_data["bundle"]
        if upload.size > MAX_ARCHIVE_BYTES:
            raise forms.ValidationError(f"The archive is larger than {MAX_ARCHIVE_BYTES // (1024 * 1024)} MB.")
        return upload


def can_upload(user: Any) -> bool:
    """Deploy right on at least one environment, as LifeTime lets developers publish."""
    return any(level >= AccessLevel.DEPLOY for level in access.levels_for(user).values())


def require_some_right(user: Any) -> None:
    """The catalog (code, data models, SQL) is not per environment: reading it needs at least the
    view right on some environment."""
    if not any(level >= AccessLevel.VIEW for level in access.levels_for(user).values()):
        raise PermissionDenied("You need a right on at least one environment to see the applications catalog.")


@login_required
def application_list(request: HttpRequest) -> HttpResponse:
    require_some_right(request.user)
    applications = Application.objects.annotate(
        version_count=Count("versions"), last_registered=Max("versions__created_at")
    ).order_by("name")
    latest = {}
    for version in ApplicationVersion.objects.order_by("application_id", "-created_at").distinct("application_id"):
        latest[version.application_id] = version
    rows = [(app, latest.get(app.pk)) for app in applications]
    return render(request, "catalog/list.html", {"rows": rows, "can_upload": can_upload(request.user)})


@login_required
def application_detail(request: HttpRequest, key) -> HttpResponse:
    require_some_right(request.user)
    application = get_object_or_404(Application, key=key)
    versions = application.versions.select_related("created_by").order_by("-created_at")
    return render(
        request,
        "catalog/application.html",
        {"application": application, "versions": versions, "can_upload": can_upload(request.user)},
    )


@login_required
def version_detail(request: HttpRequest, key) -> HttpResponse:
    require_some_right(request.user)
    version = get_object_or_404(ApplicationVersion.objects.select_related("application", "created_by"), key=key)
    manifest = manifest_from_json(version.manifest)
    # What the parser found at registration, kept on the version: the page never parses again.
    analysis = version.script_analysis or {}
    scripts = []
    for script in manifest.scripts:
        statements = script_analysis.statements_of(analysis, script.name)
        scripts.append(
            {
                "script": script,
                "analysed": statements is not None,
                "statements": [
                    {
                        **statement,
                        "flag_labels": [FLAG_LABELS.get(f, f) for f in statement.get("flags") or ()],
                        "actions": [
                            {**a, "cost_label": COST_LABELS.get(a["cost"], a["cost"]), "blocks": blocks(a["lock"])}
                            for a in statement.get("actions") or ()
                        ],
                    }
                    for statement in statements or ()
                ],
            }
        )
    return render(
        request,
        "catalog/version.html",
        {
            "version": version,
            "application": version.application,
            "manifest": manifest,
            "scripts": scripts,
            "parser": analysis.get("parser", ""),
        },
    )


@accepts_upload(settings.MAX_UPLOAD_BODY_BYTES)
@login_required
def upload(request: HttpRequest) -> HttpResponse:
    if not can_upload(request.user):
        raise PermissionDenied("You need the Deploy right on at least one environment to upload applications.")
    form = BundleUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload_file = form.cleaned_data["bundle"]
        try:
            version = catalog.register_bundle(
                data=upload_file.read(), actor=Actor.person(request.user), source=upload_file.name
            )
        except BundleRefused as exc:
            form.add_error("bundle", exc.message)
        else:
            messages.success(request, f"{version.application.name} {version.version} registered.")
            return redirect("catalog:version", key=version.key)
    return render(request, "catalog/upload.html", {"form": form})


# --- settings per environment -----------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def environment_settings(request: HttpRequest, env_key) -> HttpResponse:
    """The settings of every application that declares some, as they are in one environment.
    Anyone with the view right sees them (a secret only as set or not); the manage right changes them."""
    environment = get_object_or_404(Environment, key=env_key)
    access.require(request.user, environment, AccessLevel.VIEW)
    can_manage = access.can(request.user, environment, AccessLevel.MANAGE)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("The manage right on this environment is needed to change its settings.")
        application = get_object_or_404(Application, key=request.POST.get("application"))
        name = request.POST.get("name", "")
        secret_unchanged = request.POST.get("secret") == "1" and request.POST.get("value", "") == ""
        if not secret_unchanged or request.POST.get("clear") == "1":
            raw = "" if request.POST.get("clear") == "1" else request.POST.get("value", "")
            try:
                app_settings.set_value(
                    actor=Actor.person(request.user),
                    environment=environment,
                    application=application,
                    name=name,
                    raw=raw,
                )
            except Refusal as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{application.name}.{name} saved for {environment.name}.")
        return redirect("catalog:environment_settings", env_key=environment.key)
    applications = []
    for application in Application.objects.order_by("name"):
        version = app_settings.declaring_version(environment, application)
        views = app_settings.describe(environment, version) if version is not None else []
        if views:
            runs = RunningVersion.objects.filter(environment=environment, application=application).exists()
            applications.append({"application": application, "version": version, "settings": views, "runs": runs})
    return render(
        request,
        "catalog/environment_settings.html",
        {
            "environment": environment,
            "applications": applications,
            "can_manage": can_manage,
            "can_deploy": access.can(request.user, environment, AccessLevel.DEPLOY),
        },
    )
