"""Every refused action is an audit row: a 403 answered by a page or by the API.

The row says who (the signed-in user, or the service account the API authenticated), what was
asked (method and path) and the sentence they were given. An environment named by the refusal
(``environments.access.require`` raises ``PermissionDenied`` carrying its key) is kept, so that
the export filtered by environment finds it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from core import audit
from core.actors import Actor


def _sentence_of(request: HttpRequest, response: HttpResponse) -> str:
    stashed = getattr(request, "lifetime_refusal", None)
    if stashed:
        return stashed
    if (response.get("Content-Type") or "").startswith("application/json"):
        try:
            errors = json.loads(response.content).get("Errors") or []
            return " ".join(str(e) for e in errors)
        except (ValueError, AttributeError, TypeError):
            return ""
    return ""


class RefusalAuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 403:
            self._record(request, response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, PermissionDenied):
            request.lifetime_refusal = str(exception)
            request.lifetime_refusal_environment = getattr(exception, "environment_key", None)
        return None

    @staticmethod
    def _record(request: HttpRequest, response: HttpResponse) -> None:
        account = getattr(request, "service_account", None)
        actor = Actor.of_request(request)
        environment_key = getattr(request, "lifetime_refusal_environment", None)
        if environment_key is None:
            environment_key = getattr(response, "lifetime_refusal_environment", None)
        sentence = _sentence_of(request, response) or "Refused."
        audit.record(
            actor=actor,
            action="access.refused",
            object_type="api" if account is not None else "page",
            object_key="",
            object_label=f"{request.method} {request.path}"[:200],
            environment_key=environment_key if isinstance(environment_key, uuid.UUID) else None,
            message=sentence,
        )
