"""Delivery rules that must not depend on I/O: the retry schedule, the rate limiter and the webhook signature.

* Retries: exponential backoff with full jitter (`base * 2^(attempt-1)`, capped, times a random factor in
  [0.5, 1]), except that a channel's `Retry-After` is honoured as a floor: the next attempt is never earlier
  than the channel asked. A Retry-After beyond `max_retry_after` makes the failure final (the channel is
  telling us not to come back within the notification's useful life).
* Rate limit: a token bucket per integration, driven by an explicit clock value.
* Signature: `X-Opsbus-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` with
  `X-Opsbus-Timestamp: <unix seconds>`; receivers recompute it and reject timestamps outside their window.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Opsbus-Signature"
TIMESTAMP_HEADER = "X-Opsbus-Timestamp"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 1.0
    max_seconds: float = 300.0
    max_retry_after: float = 3600.0


def next_delay(
    policy: RetryPolicy, attempt: int, *, retry_after: float | None = None, rand: Callable[[], float]
) -> float | None:
    """Seconds before attempt `attempt + 1`, or None when `attempt` was the last allowed one."""
    if attempt >= policy.max_attempts:
        return None
    if retry_after is not None and retry_after > policy.max_retry_after:
        return None
    backoff = float(min(policy.max_seconds, policy.base_seconds * 2.0 ** (attempt - 1)))
    jittered = backoff * (0.5 + 0.5 * float(rand()))
    if retry_after is not None:
        return max(retry_after, 0.0) + 0.1 * jittered * float(rand())
    return jittered


def parse_retry_after(value: str | None, now_unix: float) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - stdlib, pure

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_unix)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket's stored state: tokens left at time `at` (seconds since the epoch)."""

    tokens: float
    at: float


def take_token(state: Bucket | None, *, per_second: float, burst: int, now: float) -> tuple[Bucket, float]:
    """Refill `state` up to `now` and take one token: (the new state, 0.0) when taken, else (the refilled state,
    seconds until a token is there). A new bucket starts full. A clock behind `at` (another replica's clock
    slightly ahead) refills nothing rather than going back in time."""
    if state is None:
        state = Bucket(float(burst), now)
    tokens = min(float(burst), state.tokens + max(0.0, now - state.at) * per_second)
    at = max(state.at, now)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, at), 0.0
    return Bucket(tokens, at), (1.0 - tokens) / per_second


class TokenBucket:
    """An in-process bucket (`take_token` on local state): `take(now)` is 0 when a token was taken, else the wait."""

    def __init__(self, per_second: float, burst: int, now: float) -> None:
        self.rate = per_second
        self.burst = burst
        self.state = Bucket(float(burst), now)

    def take(self, now: float) -> float:
        self.state, wait = take_token(self.state, per_second=self.rate, burst=self.burst, now=now)
        return wait


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, reject stale or future timestamps."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
