"""Bounded exponential backoff with jitter, for reconnect loops."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.cap, self.first * (2**self.attempt))
        self.attempt += 1
        # Full jitter keeps a fleet of workers from reconnecting in lockstep.
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0
