"""The cost model: requests are what a cluster reserves, so requests are what a workload costs.

monthly = replicas x (vCPU x price per vCPU-hour + GiB x price per GiB-hour) x 730 h. Risk is the chance the
change hurts: OOM kills when the memory target sits below peaks seen, throttling when CPU usage often exceeds
what is requested.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsbus.common.events.payloads.scale import Risk

HOURS_PER_MONTH = 730.0
GIB = 2**30


@dataclass(frozen=True)
class Prices:
    vcpu_hour: float = 0.0316
    gib_hour: float = 0.0042
    currency: str = "USD"


@dataclass(frozen=True)
class Footprint:
    """Requests of one replica (summed over its containers) and the replica count."""

    cpu_millicores: int
    memory_bytes: int
    replicas: int


def monthly_cost(f: Footprint, prices: Prices) -> float:
    per_hour = f.cpu_millicores / 1000 * prices.vcpu_hour + f.memory_bytes / GIB * prices.gib_hour
    return round(per_hour * HOURS_PER_MONTH * f.replicas, 2)


@dataclass(frozen=True)
class CostChange:
    monthly_now: float
    monthly_after: float

    @property
    def monthly_delta(self) -> float:
        return round(self.monthly_after - self.monthly_now, 2)


def cost_change(now: Footprint, after: Footprint, prices: Prices) -> CostChange:
    return CostChange(monthly_cost(now, prices), monthly_cost(after, prices))


def assess_risk(*, memory_over_share: float, cpu_over_share: float, confidence: float, recent_oom: bool) -> Risk:
    """HIGH: an OOM kill is fresh, or peaks above the memory target are common (> 5%);
    MEDIUM: some peaks above it, CPU often above its target (> 20%, throttling under contention), or little history;
    LOW otherwise."""
    if recent_oom or memory_over_share > 0.05:
        return Risk.HIGH
    if memory_over_share > 0.01 or cpu_over_share > 0.2 or confidence < 0.5:
        return Risk.MEDIUM
    return Risk.LOW
