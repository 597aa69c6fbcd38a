"""Who asks for a change: a person, a service account (an API client), or the console itself.

Every service takes an ``Actor`` and says so in its signature; nothing guesses from a value's type
whether a change comes from a person or from beat. Rights are checked for people and service
accounts; the system (beat, the stage runner, the demo loader) is trusted.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class ActorKind(enum.Enum):
    PERSON = "person"
    SERVICE_ACCOUNT = "service_account"
    SYSTEM = "system"


@dataclasses.dataclass(frozen=True)
class Actor:
    kind: ActorKind
    # The Django user of a person or a service account; None for the system.
    user: Any
    name: str

    @classmethod
    def person(cls, user: Any) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            raise ValueError("A person acting must be a signed-in user.")
        return cls(ActorKind.PERSON, user, user.get_username())

    @classmethod
    def service_account(cls, user: Any) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            raise ValueError("A service account acting must be a user.")
        return cls(ActorKind.SERVICE_ACCOUNT, user, user.get_username())

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(ActorKind.SYSTEM, None, name)

    @classmethod
    def of_request(cls, request: Any) -> Actor:
        """The person signed in to the pages, or the service account of an API call."""
        if getattr(request, "service_account", None) is not None:
            return cls.service_account(request.user)
        return cls.person(request.user)

    @property
    def is_system(self) -> bool:
        return self.kind is ActorKind.SYSTEM

    def __str__(self) -> str:
        return self.name


SYSTEM = Actor.system()
