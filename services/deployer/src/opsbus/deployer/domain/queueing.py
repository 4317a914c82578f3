"""One active rollout per workload; a newer request supersedes queued ones (keptn#9507).

Why this module exists: three requests for the same workload in a row must not roll out three times. The
running rollout finishes (stopping it half way would leave a mixed state nobody asked for); of the queued
ones only the newest survives. "Newest" is the request's own time, not arrival order: a redelivered old request
arriving after a newer one is superseded at once. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Queued:
    request_id: str
    requested_at: datetime
    running: bool = False


@dataclass(frozen=True, slots=True)
class Admission:
    enqueue: bool  # False: the new request is superseded at once
    superseded_by: str | None  # when not enqueued: the newer request that replaces it
    supersede: tuple[str, ...]  # queued requests the new one replaces


def _newer(a: Queued, b: Queued) -> bool:
    return (a.requested_at, a.request_id) > (b.requested_at, b.request_id)


def admit(existing: Sequence[Queued], new: Queued) -> Admission:
    """Admit `new` for a workload whose active (running) and queued requests are `existing`."""
    queued = [q for q in existing if not q.running]
    newer = [q for q in queued if _newer(q, new)]
    if newer:
        newest = max(newer, key=lambda q: (q.requested_at, q.request_id))
        return Admission(enqueue=False, superseded_by=newest.request_id, supersede=())
    return Admission(enqueue=True, superseded_by=None, supersede=tuple(q.request_id for q in queued))


def next_to_start(existing: Sequence[Queued]) -> str | None:
    """The request to start now: none while one is running, else the newest queued."""
    if any(q.running for q in existing):
        return None
    queued = [q for q in existing if not q.running]
    if not queued:
        return None
    return max(queued, key=lambda q: (q.requested_at, q.request_id)).request_id
