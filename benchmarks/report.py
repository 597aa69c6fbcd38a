"""Rows of the benchmark table that ``make bench`` prints (``benchmarks/run_all.py``).

A benchmark calls ``row()`` for each target it measures: what, the target (a bound in the unit,
a ratio to a floor measured in the same run, or both), the floor and the measurement. The row is
printed, and appended as one JSON line to the file named by ``BENCH_REPORT`` when the runner set it.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence


def p95(values: Sequence[float]) -> float:
    if len(values) < 2:
        return float(values[0])
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def row(
    what: str,
    *,
    measured: float,
    unit: str = "ms",
    floor: float | None = None,
    max_ratio: float | None = None,
    max_value: float | None = None,
    note: str = "",
) -> dict:
    """One measured target; met when every bound given holds (``max_value`` in ``unit``,
    ``max_ratio`` of ``measured / floor``)."""
    ratio = measured / floor if floor else None
    met = True
    bounds = []
    if max_value is not None:
        bounds.append(f"≤ {max_value:g} {unit}")
        met = met and measured <= max_value
    if max_ratio is not None:
        bounds.append(f"≤ {max_ratio:g} × floor")
        met = met and ratio is not None and ratio <= max_ratio
    entry = {
        "what": what,
        "target": " and ".join(bounds) or "(recorded)",
        "floor": floor,
        "measured": measured,
        "unit": unit,
        "ratio": ratio,
        "met": met if bounds else None,
        "note": note,
    }
    print("ROW " + json.dumps(entry), flush=True)
    path = os.environ.get("BENCH_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
    return entry


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def table(entries: Sequence[dict]) -> str:
    lines = [
        "| what | target | floor (same run) | measured | ratio | result |",
        "|---|---|---:|---:|---:|---|",
    ]
    for e in entries:
        result = {True: "met", False: "**missed**", None: "—"}[e["met"]]
        ratio = f"{e['ratio']:.2f}" if e["ratio"] is not None else "—"
        note = f" ({e['note']})" if e.get("note") else ""
        what = f"{e['what']}{note}".replace("|", "\\|")  # a shell pipe in a note is no column
        lines.append(
            f"| {what} | {e['target']} | {_number(e['floor'], e['unit'])} "
            f"| {_number(e['measured'], e['unit'])} | {ratio} | {result} |"
        )
    return "\n".join(lines)
