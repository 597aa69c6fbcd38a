"""The timeline of a stage: an inline SVG, one bar per step on the stage's own clock."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from deployments.state.machine import StepState

if TYPE_CHECKING:  # the stage views draw themselves with this module
    from deployments.status.progress import StageView

TIMELINE_WIDTH = 1000
LABEL_WIDTH = 230
ROW_HEIGHT = 22
AXIS_HEIGHT = 24
STATUS_COLOURS = {
    StepState.DONE: "#1a7f37",
    StepState.RUNNING: "#1f6feb",
    StepState.FAILED: "#c62828",
    StepState.SKIPPED: "#9aa5b1",
    StepState.PENDING: "#c9d1d9",
}


def _tick_step(span: float) -> float:
    for candidate in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span / candidate <= 8:
            return candidate
    return 14400


def timeline_svg(view: StageView, *, now: dt.datetime | None = None) -> SafeString:
    """An inline SVG: one bar per step (per application, per front-end) on the stage's own clock,
    so that one sees where the time went. Empty when the stage has not started."""
    stage = view.stage
    if stage is None or stage.started_at is None:
        return mark_safe("")
    now = now or timezone.now()
    rows = [(group, row) for group in view.groups for row in group.rows if row.step.started_at]
    if not rows:
        return mark_safe("")
    start = stage.started_at
    end = stage.finished_at or now
    end = max([end, *(row.step.finished_at or now for _, row in rows)])
    span = max((end - start).total_seconds(), 0.5)
    plot = TIMELINE_WIDTH - LABEL_WIDTH - 10

    def x(moment: dt.datetime) -> float:
        return LABEL_WIDTH + plot * max(0.0, (moment - start).total_seconds()) / span

    height = AXIS_HEIGHT + ROW_HEIGHT * len(rows) + 6
    parts = [
        f'<svg class="timeline" viewBox="0 0 {TIMELINE_WIDTH} {height}" width="100%" role="img" '
        f'aria-label="Timeline of {escape(view.label)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    tick = _tick_step(span)
    value = 0.0
    while value <= span + 1e-9:
        tx = LABEL_WIDTH + plot * value / span
        parts.append(f'<line x1="{tx:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{tx:.1f}" y2="{height}" class="tick"/>')
        parts.append(f'<text x="{tx:.1f}" y="{AXIS_HEIGHT - 10}" class="axis">{escape(_tick_label(value))}</text>')
        value += tick
    for index, (group, row) in enumerate(rows):
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        step = row.step
        label = group.label if not step.subject else f"{group.label.split(' ')[0]} · {step.subject}"
        x0 = x(step.started_at)
        x1 = max(x(step.finished_at or now), x0 + 2)
        colour = STATUS_COLOURS.get(step.status, "#9aa5b1")
        title = f"{label}: {row.elapsed_label} ({step.get_status_display().lower()})"
        if index % 2:
            parts.append(f'<rect x="0" y="{y}" width="{TIMELINE_WIDTH}" height="{ROW_HEIGHT}" class="band"/>')
        parts.append(f'<text x="4" y="{y + 15}" class="label">{escape(label[:34])}</text>')
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{x1 - x0:.1f}" height="{ROW_HEIGHT - 8}" rx="3" '
            f'fill="{colour}"{" class=running" if step.status == StepState.RUNNING else ""}>'
            f"<title>{escape(title)}</title></rect>"
        )
        if x1 < TIMELINE_WIDTH - 70:
            parts.append(f'<text x="{x1 + 4:.1f}" y="{y + 15}" class="value">{escape(row.elapsed_label)}</text>')
    ponr = view.point_of_no_return_at
    if ponr is not None and start <= ponr <= end:
        px = x(ponr)
        parts.append(f'<line x1="{px:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{px:.1f}" y2="{height}" class="ponr"/>')
        parts.append(f'<text x="{px + 3:.1f}" y="{height - 4}" class="ponr">point of no return</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _tick_label(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"
