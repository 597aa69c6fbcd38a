"""Request bodies are refused by their declared size before anything reads them.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE and FILE_UPLOAD_MAX_MEMORY_SIZE do not stop a multipart
upload from being spooled to a temporary file: the CSRF middleware reads ``request.POST`` (and so
the whole body) before any view, and before ``login_required`` has looked at who sends it. This
middleware sits before the CSRF middleware and answers from the headers alone:

- a body over the view's limit (``MAX_REQUEST_BODY_BYTES``, or what ``@accepts_upload`` allows)
  is refused with 413, whoever sends it;
- a body from someone not signed in is refused above ``MAX_ANONYMOUS_BODY_BYTES`` (a sign-in form
  is a few hundred bytes);
- a body without a Content-Length (``Transfer-Encoding: chunked``) is refused with 411: Django
  would read none of it, and no size could be checked before reading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

View = Callable[..., HttpResponse]


def accepts_upload(max_bytes: int) -> Callable[[View], View]:
    """Let a view receive a body of up to ``max_bytes`` (an upload form)."""

    def decorate(view: View) -> View:
        view.max_request_body = max_bytes  # type: ignore[attr-defined]
        return view

    return decorate


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def refusal(request: HttpRequest, status: int, sentence: str) -> HttpResponse:
    body = render_to_string("error.html", {"status": status, "message": sentence}, request=request)
    return HttpResponse(body, status=status)


def declared_length(request: HttpRequest) -> int | None:
    """The Content-Length, 0 without a body; None for a body of unknown length (chunked)."""
    raw = request.META.get("CONTENT_LENGTH")
    if raw not in (None, ""):
        try:
            return max(0, int(raw))
        except ValueError:
            return None
    if request.META.get("HTTP_TRANSFER_ENCODING", "").strip().lower() not in ("", "identity"):
        return None
    return 0


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = declared_length(request)
        if length is None:
            return refusal(
                request, 411, "Send the request body with a Content-Length: bodies of unknown length are refused."
            )
        if length > settings.MAX_UPLOAD_BODY_BYTES:
            return self._too_large(request, settings.MAX_UPLOAD_BODY_BYTES)
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: View, view_args: Any, view_kwargs: Any):
        length = declared_length(request) or 0
        if length == 0:
            return None
        limit = getattr(view_func, "max_request_body", settings.MAX_REQUEST_BODY_BYTES)
        if length > limit:
            return self._too_large(request, limit)
        if length > settings.MAX_ANONYMOUS_BODY_BYTES and not getattr(view_func, "csrf_exempt", False):
            # The API's views (CSRF-exempt) check their bearer token before reading the body;
            # everything else would have its body read by the CSRF check first.
            if not get_user(request).is_authenticated:
                return refusal(
                    request,
                    413,
                    f"Sign in first: requests from someone not signed in may carry at most "
                    f"{_megabytes(settings.MAX_ANONYMOUS_BODY_BYTES)}.",
                )
        return None

    @staticmethod
    def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
        return refusal(request, 413, f"The request is larger than {_megabytes(limit)}: refused before reading it.")
