"""Windows and freezes as moments in time: across midnight, on the nights clocks change, several
windows merged, monthly freezes ("the last Friday") and one-off ones."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from environments.windows import (
    FreezeRule,
    WeeklyWindow,
    freeze_at,
    frozen_at,
    next_window_outside_freezes,
    window_at,
)

UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
EVERY_DAY = tuple(range(7))


def at(*args, tz=UTC) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)


def test_a_window_across_midnight_is_open_after_midnight_and_ends_the_next_day():
    friday_late = WeeklyWindow((4,), dt.time(23, 0), 120, "UTC")
    # Saturday 00:30: the window that began on Friday is still open.
    assert window_at([friday_late], at(2026, 11, 28, 0, 30)) == (at(2026, 11, 27, 23, 0), at(2026, 11, 28, 1, 0))
    # Saturday 01:30: the next one is next Friday.
    assert window_at([friday_late], at(2026, 11, 28, 1, 30)) == (at(2026, 12, 4, 23, 0), at(2026, 12, 5, 1, 0))


def test_two_windows_that_touch_are_one():
    evening = WeeklyWindow((0,), dt.time(22, 0), 120, "UTC")
    night = WeeklyWindow((1,), dt.time(0, 0), 120, "UTC")
    assert window_at([evening, night], at(2026, 11, 30, 23, 0)) == (at(2026, 11, 30, 22, 0), at(2026, 12, 1, 2, 0))


def test_of_several_windows_the_next_to_open_is_chosen():
    weekdays = WeeklyWindow((0, 1, 2, 3, 4), dt.time(2, 0), 60, "UTC")
    saturday = WeeklyWindow((5,), dt.time(10, 0), 240, "UTC")
    # Friday 12:00: Saturday 10:00 comes before Monday 02:00.
    assert window_at([weekdays, saturday], at(2026, 12, 4, 12, 0))[0] == at(2026, 12, 5, 10, 0)


def test_a_window_whose_start_is_skipped_by_the_clock_change_opens_when_that_time_would_have_been():
    # Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    window = WeeklyWindow(EVERY_DAY, dt.time(2, 30), 60, "Europe/Berlin")
    start, end = window_at([window], at(2026, 3, 28, 12, 0))
    assert (start, end) == (at(2026, 3, 29, 1, 30), at(2026, 3, 29, 2, 30))  # 02:30 as winter time would say
    assert f"{start.astimezone(BERLIN):%H:%M %Z}" == "03:30 CEST"
    assert end - start == dt.timedelta(hours=1)
    # The next night it opens at 02:30 summer time again.
    assert window_at([window], at(2026, 3, 29, 12, 0))[0] == at(2026, 3, 30, 0, 30)


def test_a_window_on_the_night_clocks_go_back_lasts_its_duration_in_real_time():
    # Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET; 01:00 + 3 h ends at 03:00 CET.
    window = WeeklyWindow(EVERY_DAY, dt.time(1, 0), 180, "Europe/Berlin")
    start, end = window_at([window], at(2026, 10, 24, 12, 0))
    assert start == at(2026, 10, 24, 23, 0)  # 01:00 CEST
    assert end == at(2026, 10, 25, 2, 0)  # 03:00 CET: three hours of clock time passed, four on the wall
    assert end.astimezone(BERLIN).hour == 3
    # A start that happens twice (02:30) opens the first time (summer time).
    twice = WeeklyWindow(EVERY_DAY, dt.time(2, 30), 30, "Europe/Berlin")
    assert window_at([twice], at(2026, 10, 24, 12, 0))[0] == at(2026, 10, 25, 0, 30)


def test_the_last_friday_of_the_month_is_frozen_all_day_in_its_time_zone():
    rule = FreezeRule(reason="month-end closing", timezone="Europe/Berlin", weekday=4, week=-1)
    # 27 November 2026 is the last Friday: frozen from its local midnight to the next.
    period = frozen_at([rule], at(2026, 11, 27, 12, 0))
    assert period is not None and period.reason == "month-end closing"
    assert (period.start, period.end) == (at(2026, 11, 26, 23, 0), at(2026, 11, 27, 23, 0))
    assert frozen_at([rule], at(2026, 11, 20, 12, 0)) is None  # not the last Friday
    assert frozen_at([rule], at(2026, 11, 27, 23, 30)) is None  # Saturday already in Berlin
    upcoming = freeze_at([rule], at(2026, 11, 30, 0, 0))
    assert upcoming.start == at(2026, 12, 24, 23, 0)  # Friday 25 December
    assert rule.label() == "the last Friday of every month (Europe/Berlin)"


def test_a_one_off_freeze_and_the_next_window_outside_every_freeze():
    window = WeeklyWindow(EVERY_DAY, dt.time(2, 0), 60, "UTC")
    freeze = FreezeRule(reason="year-end", starts_at=at(2026, 12, 20, 0, 0), ends_at=at(2027, 1, 3, 0, 0))
    assert frozen_at([freeze], at(2026, 12, 24, 2, 30)).reason == "year-end"
    assert next_window_outside_freezes([window], [freeze], at(2026, 12, 21, 12, 0)) == (
        at(2027, 1, 3, 2, 0),
        at(2027, 1, 3, 3, 0),
    )
    assert freeze_at([freeze], at(2027, 1, 3, 0, 0)) is None
