"""Lists of the API come in pages of at most ``MAX_PAGE`` items.

LifeTime's own API has no paging: its clients read one answer. A client that knows nothing of
paging still gets the newest ``MAX_PAGE`` items (and a ``Link: rel="next"`` header it may
ignore); one that sends ``Offset`` and ``Limit`` walks the rest. No answer is ever unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse

from deployments.api.errors import ApiError

MAX_PAGE = 500


def _whole(request: HttpRequest, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number, not {raw!r}.") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}.")
    return value


class Page:
    def __init__(self, request: HttpRequest, items: Any) -> None:
        self.request = request
        self.offset = _whole(request, "Offset", 0, low=0, high=10**9)
        self.limit = _whole(request, "Limit", MAX_PAGE, low=1, high=MAX_PAGE)
        self.total = items.count() if hasattr(items, "count") and not isinstance(items, list) else len(items)
        self.items: Sequence[Any] = items[self.offset : self.offset + self.limit]

    def decorate(self, response: HttpResponse) -> HttpResponse:
        response["X-Total-Count"] = str(self.total)
        if self.offset + self.limit < self.total:
            query = self.request.GET.copy()
            query["Offset"], query["Limit"] = str(self.offset + self.limit), str(self.limit)
            response["Link"] = f'<{self.request.path}?{urlencode(sorted(query.items()))}>; rel="next"'
        return response


OPENAPI_PARAMETERS = [
    {
        "name": "Offset",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 10**9},
        "description": "Items to skip (paging; not in LifeTime's API).",
    },
    {
        "name": "Limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        "description": f"Items per answer, at most {MAX_PAGE} (the default).",
    },
]
