"""A wall-clock budget with an injectable clock, so that tests can drive time instead of waiting for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class Deadline:
    """``seconds`` from the moment the deadline is made (None: no limit). ``clock`` returns seconds
    (default :func:`time.monotonic`)."""

    seconds: float | None
    clock: Clock = time.monotonic
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - self.elapsed()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def until(self, share_end: float) -> float:
        """Seconds left until ``share_end`` (a fraction of the budget) has passed; inf without a limit."""
        if self.seconds is None:
            return float("inf")
        return self.seconds * share_end - self.elapsed()
