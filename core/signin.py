"""Sign-in: who the client is (for throttling), the audit rows of signing in and out, and single
sign-on through OpenID Connect.

Throttling and lockout are django-axes'; this module tells it the client address and answers a
locked-out attempt. Single sign-on is mozilla-django-oidc's, with three changes: users are matched
by the provider's subject (never by an email address a local account may share), a re-
authentication asks the provider for a fresh login (``prompt=login``) and records when the
provider says it happened, and the provider's groups are handed to whoever listens to
``sso_signed_in`` (environments maps them to rights: this module knows nothing of environments).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.dispatch import Signal, receiver
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from core import audit
from core.actors import Actor
from core.models import SingleSignOnIdentity

logger = logging.getLogger("core.signin")

# Session keys (seconds since the epoch).
SIGNED_IN_AT = "lifetime.signed_in_at"
AUTHENTICATED_AT = "lifetime.authenticated_at"
LAST_ACTIVITY = "lifetime.last_activity"
METHOD = "lifetime.signin_method"

# Sent after every single sign-on with the provider's groups: ``user``, ``groups``.
sso_signed_in = Signal()


def client_ip(request: HttpRequest) -> str:
    """The address sign-in attempts are counted against.

    The socket's peer, unless ``TRUSTED_PROXY_COUNT`` says how many proxies of ours stand in front
    of the console: then the address the outermost of them saw, counted from the right of
    X-Forwarded-For (entries further left are whatever the client wrote)."""
    remote = request.META.get("REMOTE_ADDR", "") or "0.0.0.0"
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(hops) < count:
        return remote
    candidate = hops[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


class SignInThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for sign-ins that come with a request (every page and form).
    ``authenticate()`` without a request (a management command, the test client's ``login``) has
    no client to count and nothing to throttle; it goes on to the other backends."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def attempted_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username an attempt is counted against. Django's form normalises it (NFKC), which can
    make 150 typed characters several times longer: axes stores at most 255."""
    username = (credentials or {}).get("username")
    if username is None:
        username = request.POST.get("username") if request is not None and request.method == "POST" else None
    return None if username is None else str(username)[:150]


def locked_out_response(request: HttpRequest, credentials: dict | None = None, *args: Any, **kwargs: Any):
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    message = (
        f"Too many failed sign-ins from this address or for this user: sign-in is locked for {minutes} "
        "minutes after the last attempt. Ask an infra admin if you need in sooner."
    )
    body = render_to_string("error.html", {"status": 429, "message": message}, request=request)
    response = HttpResponse(body, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


def mark_authenticated(request: HttpRequest, *, at: float | None = None, method: str | None = None) -> None:
    """The user proved who they are (password or provider) at ``at``: re-authentication counts from here."""
    now = time.time()
    request.session[AUTHENTICATED_AT] = min(at or now, now)
    request.session[LAST_ACTIVITY] = now
    if method:
        request.session[METHOD] = method


def _method_of(user: Any) -> str:
    backend = getattr(user, "backend", "") or ""
    return "sso" if backend.endswith("SingleSignOnBackend") else "password"


SINGLE_SIGN_ON = Actor.system("single sign-on")


# --- audit rows ------------------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="core.signin.logged_in")
def _signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    method = _method_of(user)
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[SIGNED_IN_AT] = now
        mark_authenticated(request, at=getattr(request, "lifetime_auth_time", None) or now, method=method)
    audit.record(
        actor=Actor.person(user),
        action="signin.succeeded",
        object_type="user",
        object_key=user.pk,
        object_label=user.username,
        message=f"Signed in with {'single sign-on' if method == 'sso' else 'a password'} from {_ip(request)}.",
    )


@receiver(user_logged_out, dispatch_uid="core.signin.logged_out")
def _signed_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    reason = getattr(request, "lifetime_signout_reason", "") if request is not None else ""
    audit.record(
        actor=Actor.person(user),
        action="signin.signed_out",
        object_type="user",
        object_key=user.pk,
        object_label=user.username,
        message=reason or f"Signed out from {_ip(request)}.",
    )


@receiver(user_login_failed, dispatch_uid="core.signin.failed")
def _sign_in_failed(sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Django passes the credentials with the password already masked; only the name is kept.
    username = str(credentials.get("username", ""))[:150]
    audit.record(
        actor=Actor.unauthenticated(username or "unknown"),
        action="signin.failed",
        object_type="user",
        object_label=username,
        message=f"Failed sign-in for {username or 'no username'!r} from {_ip(request)}.",
    )


def _ip(request: HttpRequest | None) -> str:
    return client_ip(request) if request is not None else "an unknown address"


@receiver(user_locked_out, dispatch_uid="core.signin.locked_out")
def _locked_out(sender: Any, request: HttpRequest, username: str | None, ip_address: str, **kwargs: Any) -> None:
    audit.record(
        actor=Actor.unauthenticated(username or "unknown"),
        action="signin.locked_out",
        object_type="user",
        object_label=username or "",
        message=(
            f"Sign-in locked out for {username or 'no username'!r} from {ip_address} after "
            f"{settings.AXES_FAILURE_LIMIT} failures; cool-off {settings.AXES_COOLOFF_TIME}."
        ),
    )


# --- single sign-on ----------------------------------------------------------------------------

USERNAME_RE = re.compile(r"[^A-Za-z0-9@.+_-]+")


class SingleSignOnBackend(OIDCAuthenticationBackend):
    """Users are found by the provider's subject; a new subject gets a new account (never a local
    account that happens to share its name or email address)."""

    def verify_claims(self, claims: dict) -> bool:
        return bool(claims.get("sub"))

    def verify_token(self, token: str, **kwargs: Any) -> Any:
        payload = super().verify_token(token, **kwargs)
        if payload and self.request is not None:
            # When the provider last really authenticated the user: what a re-authentication checks.
            auth_time = payload.get("auth_time")
            self.request.lifetime_auth_time = float(auth_time) if isinstance(auth_time, int | float) else None
        return payload

    def filter_users_by_claims(self, claims: dict):
        return get_user_model().objects.filter(sso_identity__subject=str(claims["sub"]))

    def create_user(self, claims: dict):
        user_model = get_user_model()
        wanted = claims.get("preferred_username") or (claims.get("email") or "").split("@")[0] or "sso-user"
        base = USERNAME_RE.sub("-", str(wanted))[:120].strip("-") or "sso-user"
        username = base
        # A local account of the same name stays the local (break-glass) account.
        suffix = 0
        while user_model.objects.filter(username__iexact=username).exists():
            suffix += 1
            username = f"{base}.sso{suffix if suffix > 1 else ''}"
        with transaction.atomic():
            user = user_model.objects.create_user(username, email=str(claims.get("email") or ""))
            user.set_unusable_password()
            user.save(update_fields=["password"])
            SingleSignOnIdentity.objects.create(user=user, subject=str(claims["sub"]))
            audit.record(
                actor=SINGLE_SIGN_ON,
                action="user.created",
                object_type="user",
                object_key=user.pk,
                object_label=user.username,
                message=f"Account created at the first single sign-on of subject {claims['sub']!r}.",
            )
        return user

    def update_user(self, user: Any, claims: dict):
        email = str(claims.get("email") or "")
        if email and email != user.email:
            user.email = email
            user.save(update_fields=["email"])
        return user

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict):
        user_info = self.get_userinfo(access_token, id_token, payload)
        user = super().get_or_create_user(access_token, id_token, payload)
        if user is not None:
            groups = user_info.get(settings.OIDC_GROUPS_CLAIM) or payload.get(settings.OIDC_GROUPS_CLAIM) or []
            if isinstance(groups, str):
                groups = [groups]
            sso_signed_in.send(sender=type(self), user=user, groups=[str(g) for g in groups])
        return user

    def get_userinfo(self, access_token: str, id_token: str, payload: dict) -> dict:
        # Asked once per sign-in even though get_or_create_user above and its parent both want it.
        cached = getattr(self, "_userinfo", None)
        if cached is None:
            cached = self._userinfo = super().get_userinfo(access_token, id_token, payload)
        return cached


class SingleSignOnRequestView(OIDCAuthenticationRequestView):
    """Starts a single sign-on; ``?reauth=1`` makes the provider ask for the credentials again."""

    def get_extra_params(self, request: HttpRequest) -> dict:
        params = dict(super().get_extra_params(request))
        if request.GET.get("reauth"):
            params.update({"prompt": "login", "max_age": "0"})
        return params


class SingleSignOnCallbackView(OIDCAuthenticationCallbackView):
    def login_success(self):
        response = super().login_success()
        # The parent does not call login() again for the user already signed in (a
        # re-authentication): record the provider's fresh authentication here in any case.
        mark_authenticated(self.request, at=getattr(self.request, "lifetime_auth_time", None), method="sso")
        return response

    def login_failure(self):
        audit.record(
            actor=Actor.unauthenticated("unknown"),
            action="signin.failed",
            object_type="user",
            message=f"Failed single sign-on from {client_ip(self.request)}.",
        )
        return super().login_failure()
