"""Error pages that say what went wrong in a sentence, and malformed input answered 400, never 500."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import BadRequest, ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string


def _page(request: HttpRequest, status: int, message: str) -> HttpResponse:
    body = render_to_string("error.html", {"status": status, "message": message}, request=request)
    return HttpResponse(body, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Django's own 400 page says nothing; the sentence of a BadRequest is written for the user.
    message = str(exception) if isinstance(exception, BadRequest) and str(exception) else ""
    return _page(request, 400, message or "The request is malformed.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, 403, str(exception or "") or "You do not have the right to do this.")


def validation_message(exc: ValidationError) -> str:
    return " ".join(str(m) for m in exc.messages) or "The request holds a malformed value."


class MalformedInputMiddleware:
    """A ValidationError that reaches a page's view layer comes from a value of the request (a key
    that is not a UUID, a number that is not one) handed to a query: the request is at fault."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        # PostgreSQL stores no NUL in text: refused here once, rather than as a 500 wherever a
        # field is saved or searched.
        for values in (request.GET, request.POST):
            for key, items in values.lists():
                if "\x00" in key or any("\x00" in item for item in items):
                    return _page(request, 400, "The request holds a NUL character, which no field accepts.")
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ValidationError):
            return _page(request, 400, validation_message(exception))
        return None
