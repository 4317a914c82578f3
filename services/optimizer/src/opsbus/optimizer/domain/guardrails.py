"""Guardrails for auto mode: whether a recommendation may be applied now, and how much of it.

Each guard is a plain check with a name; the first one that refuses wins and its reason is recorded, so an
operator reading the audit trail sees *why* nothing happened ("rollout in progress", "cooldown until ...").
The step clamp does not refuse: it moves a request at most `max_step_down`/`max_step_up` of its current
value per change, so a wrong recommendation costs one bounded step, not an outage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Guardrails:
    max_step_down: float = 0.3
    max_step_up: float = 1.0
    min_replicas: int = 1
    cooldown_seconds: float = 3600.0
    min_confidence: float = 0.5
    min_change: float = 0.1
    dry_run: bool = False


@dataclass(frozen=True)
class RolloutState:
    generation: int
    observed_generation: int | None
    replicas: int
    updated_replicas: int
    available_replicas: int

    def active(self) -> str | None:
        """Why a rollout is under way, or None when the workload is settled."""
        if self.observed_generation is None or self.observed_generation < self.generation:
            return f"observedGeneration {self.observed_generation} < generation {self.generation}"
        if self.updated_replicas < self.replicas:
            return f"updatedReplicas {self.updated_replicas} < replicas {self.replicas}"
        if self.available_replicas < self.replicas:
            return f"availableReplicas {self.available_replicas} < replicas {self.replicas}"
        return None


def clamp_step(current: int | None, target: int, g: Guardrails) -> int:
    """Move from `current` toward `target` by at most the allowed step (no current value: the target)."""
    if current is None or current <= 0:
        return target
    low = math.ceil(current * (1 - g.max_step_down))
    high = math.floor(current * (1 + g.max_step_up))
    return max(low, min(high, target))


def relative_change(current: int | None, new: int) -> float:
    if current is None or current <= 0:
        return math.inf if new > 0 else 0.0
    return abs(new - current) / current


def cooldown_left(last_applied_at: float | None, now: float, g: Guardrails) -> float:
    if last_applied_at is None:
        return 0.0
    return max(0.0, last_applied_at + g.cooldown_seconds - now)


def replica_floor(min_replicas: int, pdb_min_available: int | None) -> int:
    """The fewest replicas a scale-down may leave: the configured minimum and a PDB's minAvailable."""
    return max(min_replicas, pdb_min_available or 0)
