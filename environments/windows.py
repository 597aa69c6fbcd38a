"""Deployment windows and freezes as moments in time: plain functions of their settings.

A window is weekly: days of the week, a local start time, a duration, a time zone. It opens at the
local start time and lasts its duration in elapsed time, so that the estimate of a Continue is
compared with the seconds really available, also on the nights clocks change:
- a start that does not exist that night (clocks jump forward over it) opens at the instant that
  local time would have been before the jump (02:30 on a night that skips 02:00–03:00 opens at 03:30
  summer time), which is how the local start is read by ``zoneinfo`` (fold 0);
- a start that happens twice (clocks go back) opens the first time.
Windows that touch or overlap are one window (a window across midnight is one window whatever day
it started on).

A freeze is a period when no deployment changes the environment: a one-off range, or a monthly
rule ("the last Friday", "the second Tuesday"), the whole local day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Iterable

from dateutil import rrule

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}


@dataclasses.dataclass(frozen=True)
class WeeklyWindow:
    days: tuple[int, ...]
    start: dt.time
    minutes: int
    timezone: str

    def label(self) -> str:
        days = "every day" if len(self.days) == 7 else ", ".join(WEEKDAYS[d] for d in sorted(self.days))
        end = (dt.datetime.combine(dt.date(2000, 1, 1), self.start) + dt.timedelta(minutes=self.minutes)).time()
        return f"{self.start:%H:%M}–{end:%H:%M} {self.timezone}, {days}"

    def openings(self, around: dt.datetime, *, days_before: int = 1, days_after: int = 8) -> list[tuple]:
        """Every opening (start, end) of this window whose local start day is within the range."""
        tz = zoneinfo.ZoneInfo(self.timezone)
        local_day = around.astimezone(tz).date()
        length = dt.timedelta(minutes=self.minutes)
        out = []
        for offset in range(-days_before, days_after + 1):
            day = local_day + dt.timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            # To UTC first: aware arithmetic on a zoneinfo datetime adds wall-clock time.
            start = dt.datetime.combine(day, self.start, tzinfo=tz).astimezone(dt.UTC)
            out.append((start, start + length))
        return out


def merged(intervals: Iterable[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Intervals sorted, those that touch or overlap made one."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def window_at(
    windows: list[WeeklyWindow], moment: dt.datetime, *, days_after: int = 8
) -> tuple[dt.datetime, dt.datetime] | None:
    """The window open at ``moment``, else the next one to open: (start, end) in UTC."""
    if not windows:
        return None
    intervals = merged(o for w in windows for o in w.openings(moment, days_after=days_after))
    for start, end in intervals:
        if end > moment:
            return start, end
    return None


def windows_from(moment: dt.datetime, windows: list[WeeklyWindow], *, days: int = 62):
    """The openings from ``moment`` on (the open one first), over ``days`` days."""
    intervals = merged(o for w in windows for o in w.openings(moment, days_after=days))
    return [(start, end) for start, end in intervals if end > moment]


@dataclasses.dataclass(frozen=True)
class FreezeRule:
    """A one-off range (``starts_at``, ``ends_at``) or a monthly day (``weekday`` of the ``week``-th
    week, -1: the last), with its reason."""

    reason: str
    timezone: str = "UTC"
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    weekday: int | None = None
    week: int | None = None

    @property
    def is_monthly(self) -> bool:
        return self.weekday is not None and self.week is not None

    def label(self) -> str:
        if self.is_monthly:
            return f"the {ORDINALS.get(self.week, str(self.week))} {WEEKDAY_NAMES[self.weekday]} of every month ({self.timezone})"
        tz = zoneinfo.ZoneInfo(self.timezone)
        start, end = self.starts_at.astimezone(tz), self.ends_at.astimezone(tz)
        return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} {self.timezone}"

    def periods(self, moment: dt.datetime, *, days: int = 400) -> list[tuple[dt.datetime, dt.datetime]]:
        """The frozen periods that end after ``moment``, up to ``days`` ahead."""
        if not self.is_monthly:
            if self.starts_at is None or self.ends_at is None or self.ends_at <= moment:
                return []
            return [(self.starts_at, self.ends_at)]
        tz = zoneinfo.ZoneInfo(self.timezone)
        local = moment.astimezone(tz)
        first = dt.datetime.combine(local.date().replace(day=1), dt.time(0, 0))
        rule = rrule.rrule(
            rrule.MONTHLY,
            byweekday=rrule.weekday(self.weekday, self.week),
            dtstart=first,
            until=first + dt.timedelta(days=days),
        )
        out = []
        for day in rule:
            start = day.replace(tzinfo=tz).astimezone(dt.UTC)
            end = (day + dt.timedelta(days=1)).replace(tzinfo=tz).astimezone(dt.UTC)
            if end > moment:
                out.append((start, end))
        return out


@dataclasses.dataclass(frozen=True)
class FreezePeriod:
    start: dt.datetime
    end: dt.datetime
    rule: FreezeRule

    @property
    def reason(self) -> str:
        return self.rule.reason

    def sentence(self, name: str) -> str:
        return (
            f"{name} is frozen from {self.start:%a %Y-%m-%d %H:%M} to {self.end:%a %Y-%m-%d %H:%M} UTC: {self.reason}"
        )


def freeze_at(rules: list[FreezeRule], moment: dt.datetime) -> FreezePeriod | None:
    """The freeze in force at ``moment``, else the next one (None without any)."""
    periods = sorted(
        (FreezePeriod(start, end, rule) for rule in rules for start, end in rule.periods(moment)),
        key=lambda p: (p.start, p.end),
    )
    return periods[0] if periods else None


def frozen_at(rules: list[FreezeRule], moment: dt.datetime) -> FreezePeriod | None:
    period = freeze_at(rules, moment)
    return period if period is not None and period.start <= moment < period.end else None


def next_window_outside_freezes(
    windows: list[WeeklyWindow], rules: list[FreezeRule], moment: dt.datetime, *, days: int = 62
) -> tuple[dt.datetime, dt.datetime] | None:
    """The next opening of a window whose start is in no freeze."""
    for start, end in windows_from(moment, windows, days=days):
        if start >= moment and frozen_at(rules, start) is None:
            return start, end
    return None
