"""Bearer-token authentication of service accounts and the wrapper every API view goes through.

The wrapper is the only place that maps the services' exceptions to status codes, so that every
endpoint answers the same way: 401 without a valid token, 403 without the right, 404 for unknown
keys, the refusal's own code with its sentence when a service refuses (400 for most), 409 when the
same action is already running where the endpoint tells that apart.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from core import service_accounts
from core.models import ServiceAccount
from core.refusals import Refusal
from deployments.api.errors import error_response

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def bearer_account(request: HttpRequest) -> ServiceAccount | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return service_accounts.authenticate(token.strip())


def endpoint(*methods: str, conflict_is_409: bool = False) -> Callable[[View], View]:
    """Wrap an API view: CSRF-exempt, bearer-authenticated, allowed methods, exceptions as JSON.

    ``conflict_is_409``: a conflict (somebody pressed the same button first) answers 409 (Continue,
    where pipelines must tell a double click from a refusal); elsewhere it is one more reason for a
    400, the code clients expect.
    """
    allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            account = bearer_account(request)
            if account is None:
                return error_response(401, "Missing, unknown or revoked token.")
            # The session user (if a browser sent a cookie) never counts: only the token does.
            request.user = account.user
            request.service_account = account
            if request.method not in allowed:
                response = error_response(405, f"{request.method} is not allowed here.")
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            try:
                return view(request, **kwargs)
            except Refusal as exc:
                status = 400 if exc.conflict and not conflict_is_409 else exc.http_status
                return error_response(status, exc.message)
            except PermissionDenied as exc:
                return error_response(403, str(exc))
            except (Http404, ObjectDoesNotExist) as exc:
                return error_response(404, str(exc) if isinstance(exc, Http404) else "")
            except RequestDataTooBig:
                return error_response(413)

        return wrapper

    return decorate
