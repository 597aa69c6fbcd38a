"""Pages answer every refusal the same way, whichever view let it through: the sentence, shown to
the person, never a 500. (The API's wrapper answers refusals itself, as JSON.)"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from core.refusals import Refusal


class RefusalMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, Refusal):
            return None
        back = request.headers.get("Referer", "")
        if (
            request.method == "POST"
            and back
            and url_has_allowed_host_and_scheme(
                back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            )
        ):
            # A button refused: back to the page it was pressed on, with the reason.
            messages.error(request, exception.message)
            return HttpResponseRedirect(back)
        return render(request, "refused.html", {"message": exception.message}, status=exception.http_status)
