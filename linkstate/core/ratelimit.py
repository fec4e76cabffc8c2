"""A token bucket over the core's `now`: at most `burst` at once, then `rate` per second.

Owns: `TokenBucket`, used to rate-limit what one connection may ask for (DUMP answers, docs/SECURITY.md).
Invariants: no clock is read (`now` is passed in, like everywhere in the core); tokens never exceed `burst`; time
going backwards adds nothing.
May import: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: int
    at: float  # when `tokens` was last brought up to date
    tokens: float = -1.0  # -1: full (the bucket starts with `burst`)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def full(self, now: float) -> bool:
        """Would the bucket hold `burst` tokens at `now` (nothing to remember about it)?"""
        return self.tokens + max(0.0, now - self.at) * self.rate >= self.burst

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        if now > self.at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
            self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
