"""The one base of every refusal: an action that cannot be done now, with a sentence saying why.

Services raise a subclass; the pages show the sentence, the API answers ``http_status`` with it
(``Conflict``: the same action is already under way, 409 where the API distinguishes it), so a
new refusal is never a 500. A failure while work runs (a step failing) is not a refusal.
"""

from __future__ import annotations


class Refusal(Exception):
    http_status = 400
    # Somebody else got there first (a double click, a second user, a pipeline).
    conflict = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Conflict(Refusal):
    http_status = 409
    conflict = True


class NotFound(Refusal):
    http_status = 404
