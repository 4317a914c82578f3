"""Per-caller token buckets: `rate` requests per second sustained, `burst` at once. Pure: the clock is passed.

Each replica limits on its own (the limit a client sees is per replica); buckets of idle callers are
forgotten oldest-first beyond `max_callers`, so memory stays bounded whatever the number of keys.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0
    remaining: int = 0


class RateLimiter:
    def __init__(self, rate: float, burst: int, *, max_callers: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, caller: str, now: float, cost: float = 1.0) -> Verdict:
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
        if tokens >= cost:
            tokens -= cost
            verdict = Verdict(True, 0.0, int(tokens))
        else:
            verdict = Verdict(False, (cost - tokens) / self.rate, 0)
        self._buckets[caller] = (tokens, now)
        self._buckets.move_to_end(caller)
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        return verdict

    @staticmethod
    def retry_after_header(verdict: Verdict) -> str:
        return str(max(1, math.ceil(verdict.retry_after)))
