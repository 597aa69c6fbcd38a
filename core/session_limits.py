"""Idle and absolute limits of a signed-in session, and how recently its user authenticated.

- Idle: no request made by the person for ``SESSION_IDLE_SECONDS`` signs the session out. The
  polls of a status page (htmx GETs) are not the person: they neither keep a session alive nor
  end it early; once the session is over, the next poll tells htmx to go to the sign-in page.
- Absolute: ``SESSION_ABSOLUTE_SECONDS`` after signing in, the session ends whatever happens.
- Recent authentication: ``recently_authenticated`` is what the production actions ask
  (deployments.plans.production_guard); a password or a fresh single sign-on renews it.

The API's service accounts have no session: a token is checked on every request and revoked in
one click, so none of this applies to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from core.signin import AUTHENTICATED_AT, LAST_ACTIVITY, SIGNED_IN_AT

# Writing the session on every click would cost a database write per request: the activity
# time is refreshed at most this often (the idle limit is only as precise as this).
ACTIVITY_RESOLUTION_SECONDS = 30


def recently_authenticated(request: HttpRequest, *, max_age: int | None = None) -> bool:
    at = request.session.get(AUTHENTICATED_AT)
    limit = settings.REAUTH_MAX_AGE_SECONDS if max_age is None else max_age
    return isinstance(at, int | float) and time.time() - at <= limit


def _is_poll(request: HttpRequest) -> bool:
    return request.method in ("GET", "HEAD") and request.headers.get("HX-Request") == "true"


class SessionLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            expired = self._expired(request)
            if expired:
                return self._sign_out(request, expired)
            if not _is_poll(request):
                now = time.time()
                last = request.session.get(LAST_ACTIVITY)
                if not isinstance(last, int | float) or now - last >= ACTIVITY_RESOLUTION_SECONDS:
                    request.session[LAST_ACTIVITY] = now
        return self.get_response(request)

    @staticmethod
    def _expired(request: HttpRequest) -> str:
        now = time.time()
        signed_in = request.session.get(SIGNED_IN_AT)
        last = request.session.get(LAST_ACTIVITY)
        # A session from before these limits existed has neither time: treat it as signed in now.
        if not isinstance(signed_in, int | float):
            request.session[SIGNED_IN_AT] = signed_in = now
        if not isinstance(last, int | float):
            request.session[LAST_ACTIVITY] = last = now
        if now - signed_in > settings.SESSION_ABSOLUTE_SECONDS:
            hours = settings.SESSION_ABSOLUTE_SECONDS / 3600
            return f"Your session ended {hours:g} hours after you signed in: please sign in again."
        if now - last > settings.SESSION_IDLE_SECONDS:
            minutes = settings.SESSION_IDLE_SECONDS // 60
            return f"You were signed out after {minutes} minutes without activity: please sign in again."
        return ""

    @staticmethod
    def _sign_out(request: HttpRequest, reason: str) -> HttpResponse:
        request.lifetime_signout_reason = reason  # the sign-out audit row says why
        auth.logout(request)
        messages.info(request, reason)
        login = reverse(settings.LOGIN_URL)
        target = f"{login}?{urlencode({'next': request.get_full_path()})}" if request.method == "GET" else login
        if request.headers.get("HX-Request") == "true":
            # htmx would swap the sign-in page into a fragment: have it navigate instead.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = login
            return response
        return HttpResponseRedirect(target)
