"""Errors of the API: one JSON shape for every non-2xx answer, never a Django HTML page.

Clients dispatch on the exact status code and parse the body as JSON; an HTML error page (a 404
from URL resolution, a 500 from an unexpected exception, a 400 for a bad Host header) would break
them. The middleware rewrites whatever is not already JSON inside the API's prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from core.refusals import Refusal

API_PREFIX = "/lifetimeapi/rest/v2/"

REASONS = {
    400: "Invalid request.",
    401: "Authentication required: send Authorization: Bearer <service account token>.",
    403: "The service account does not have the required permissions.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    413: "Request body too large.",
    500: "Internal error: the console logged the details.",
}


class ApiError(Refusal):
    """Raised by views and parsers for what only the API refuses (a malformed body, an unknown
    key); the decorator turns it, like every other refusal, into the JSON error response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status


def error_response(status: int, *messages: str) -> JsonResponse:
    errors = [m for m in messages if m] or [REASONS.get(status, "Request failed.")]
    response = JsonResponse({"Errors": errors, "StatusCode": status}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="lifetimeapi"'
    return response


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")


def _is_json(response: HttpResponse) -> bool:
    return (response.get("Content-Type") or "").startswith("application/json")


class ApiErrorMiddleware:
    """Outermost middleware: inside the API prefix, error pages become JSON and no cookie is set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_api_path(request.path):
            return response
        # The API is cookie-less: whatever an inner middleware wanted to set (a CSRF or session
        # cookie) has no business reaching a pipeline.
        response.cookies.clear()
        if response.status_code >= 400 and not _is_json(response):
            replacement = error_response(response.status_code, _message_of(response))
            if response.has_header("Allow"):
                replacement["Allow"] = response["Allow"]
            return replacement
        return response


def _message_of(response: HttpResponse) -> str:
    """A sentence for a non-JSON error: never the HTML page itself (it may hold a traceback)."""
    if response.status_code == 404:
        return "No such API resource."
    return REASONS.get(response.status_code, "Request failed.")


def json_body(request: HttpRequest) -> dict:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    if not request.body:
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        data = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data
