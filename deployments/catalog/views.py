"""Pages of the applications catalog: applications, their versions, a version's content, upload."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from core.actors import Actor
from deployments.catalog import services as catalog
from deployments.catalog.bundles import MAX_ARCHIVE_BYTES, BundleRefused, manifest_from_json
from deployments.models import Application, ApplicationVersion
from deployments.statements import classify, split_script
from environments import access
from environments.models import AccessLevel


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


@login_required
def application_list(request: HttpRequest) -> HttpResponse:
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
    application = get_object_or_404(Application, key=key)
    versions = application.versions.select_related("created_by").order_by("-created_at")
    return render(
        request,
        "catalog/application.html",
        {"application": application, "versions": versions, "can_upload": can_upload(request.user)},
    )


@login_required
def version_detail(request: HttpRequest, key) -> HttpResponse:
    version = get_object_or_404(ApplicationVersion.objects.select_related("application", "created_by"), key=key)
    manifest = manifest_from_json(version.manifest)
    scripts = [
        {
            "script": script,
            "statements": [(s, classify(s.sql)) for s in split_script(script.sql)],
        }
        for script in manifest.scripts
    ]
    return render(
        request,
        "catalog/version.html",
        {"version": version, "application": version.application, "manifest": manifest, "scripts": scripts},
    )


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
