"""The steps of the two stages, as plain typed functions.

Each step takes what it needs and a ``StepLog``; it runs and is tested without Celery. A known
failure (a compile error, a SQL error, a front-end that does not answer) raises ``StepFailed`` with
a sentence for people; anything else is a bug and propagates with its traceback.
"""

from __future__ import annotations

from typing import Protocol


class StepFailed(Exception):
    """A step failed for a reason people can act on. ``message`` is shown as is.

    ``suspend``: the plan waits for a person (Continue, Prepare Again, Abort) instead of finishing
    with errors.
    """

    suspend = False

    def __init__(self, message: str, *, detail: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}


class StepLog(Protocol):
    """Where a step writes what it does. The stage runner's writer appends numbered log lines
    to the plan and updates the step's progress; ``ListLog`` keeps them in memory."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...

    def progress(self, done: int, total: int) -> None: ...


class ListLog:
    """A StepLog that keeps lines in memory: for the command line and for tests of a step alone."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.done = 0
        self.total = 0

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def messages(self, level: str | None = None) -> list[str]:
        return [m for lvl, m in self.lines if level is None or lvl == level]

    def __str__(self) -> str:
        return "\n".join(f"[{lvl}] {m}" for lvl, m in self.lines)
