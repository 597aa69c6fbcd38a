from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from deployments.models import LogLine

register = template.Library()


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def index(sequence: Any, position: int) -> Any:
    try:
        return sequence[position]
    except (IndexError, TypeError):
        return None


@register.filter
def percent(done: int, total: int) -> int:
    return int(100 * done / total) if total else 0


@register.simple_tag
def log_lines(lines: Iterable[LogLine]) -> SafeString:
    """The ``<li>`` of each log line. In Python rather than an included template per line: the
    page shows 200 lines, and 200 template includes were most of the cost of the whole page."""
    return mark_safe(
        "".join(
            format_html(
                '<li class="{}" value="{}"><time datetime="{}">{}</time> {}</li>',
                line.level,
                line.seq,
                (at := timezone.localtime(line.at)).isoformat(),
                at.strftime("%H:%M:%S"),
                line.message,
            )
            for line in lines
        )
    )
