"""Re-authentication: the password again (or a fresh single sign-on) before an action on
production. ``deployments.plans.production_guard`` sends people here; they come back to the page
they were on and click again."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from core import audit
from core.actors import Actor
from core.signin import mark_authenticated


class ReauthenticationForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}), max_length=4096)


def reauthentication_url(request: HttpRequest, next_url: str, why: str = "") -> str:
    query = {"next": next_url}
    if why:
        query["why"] = why[:200]
    return f"{reverse('reauthenticate')}?{urlencode(query)}"


def _safe_next(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("home")


@never_cache
@login_required
def reauthenticate(request: HttpRequest) -> HttpResponse:
    user = request.user
    next_url = _safe_next(request)
    form = ReauthenticationForm(request.POST or None)
    if request.method == "POST" and user.has_usable_password() and form.is_valid():
        # Through authenticate(): failures count towards the lockout like any sign-in.
        proved = auth.authenticate(request, username=user.get_username(), password=form.cleaned_data["password"])
        if proved is not None and proved.pk == user.pk:
            mark_authenticated(request, at=time.time(), method="password")
            audit.record(
                actor=Actor.person(user),
                action="signin.reauthenticated",
                object_type="user",
                object_key=user.pk,
                object_label=user.username,
                message="Confirmed the password before an action on production.",
            )
            return HttpResponseRedirect(next_url)
        form.add_error("password", "That is not your password.")
    sso_url = ""
    if settings.SSO_ENABLED and hasattr(user, "sso_identity"):
        sso_url = f"{reverse('oidc_authentication_init')}?{urlencode({'reauth': '1', 'next': next_url})}"
    return render(
        request,
        "registration/reauthenticate.html",
        {
            "form": form if user.has_usable_password() else None,
            "sso_url": sso_url,
            "next": next_url,
            "why": request.GET.get("why", "")[:200],
            "minutes": max(1, settings.REAUTH_MAX_AGE_SECONDS // 60),
        },
    )
