"""Time as a parameter (STYLE.md "Time and keys").

Protocol code takes ``now`` (POSIX seconds, float) as an argument; only the edges own a clock. A ``Clock``
is anything callable that returns the current time, so tests pass a ``FixedClock`` and never sleep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float: ...


def system_clock() -> float:
    """The wall clock, for the edges of the program."""
    return time.time()


@dataclass
class FixedClock:
    """A clock that only moves when told to."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
