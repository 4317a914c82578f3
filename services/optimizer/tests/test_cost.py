"""Cost model arithmetic and risk levels."""

from __future__ import annotations

import pytest

from opsbus.common.events.payloads.scale import Risk
from opsbus.optimizer.domain.cost import GIB, Footprint, Prices, assess_risk, cost_change, monthly_cost


def test_monthly_cost_is_replicas_times_hourly_requests_times_730() -> None:
    prices = Prices(vcpu_hour=0.0316, gib_hour=0.0042)
    # (2 x 0.0316 + 4 x 0.0042) x 730 x 3 = 0.08 x 2190 = 175.20
    assert monthly_cost(Footprint(2000, 4 * GIB, 3), prices) == pytest.approx(175.20)
    assert monthly_cost(Footprint(0, 0, 5), prices) == 0.0


def test_delta_is_after_minus_now() -> None:
    prices = Prices(vcpu_hour=0.04, gib_hour=0.005)
    change = cost_change(Footprint(1000, GIB, 4), Footprint(500, GIB // 2, 4), prices)
    assert change.monthly_now == pytest.approx((0.04 + 0.005) * 730 * 4)
    assert change.monthly_after == pytest.approx((0.02 + 0.0025) * 730 * 4)
    assert change.monthly_delta == pytest.approx(change.monthly_after - change.monthly_now)
    assert change.monthly_delta < 0  # saves money


@pytest.mark.parametrize(
    ("mem_over", "cpu_over", "conf", "oom", "risk"),
    [
        (0.0, 0.0, 0.9, False, Risk.LOW),
        (0.0, 0.0, 0.9, True, Risk.HIGH),
        (0.06, 0.0, 0.9, False, Risk.HIGH),
        (0.02, 0.0, 0.9, False, Risk.MEDIUM),
        (0.0, 0.3, 0.9, False, Risk.MEDIUM),
        (0.0, 0.0, 0.3, False, Risk.MEDIUM),
    ],
)
def test_risk_levels(mem_over: float, cpu_over: float, conf: float, oom: bool, risk: Risk) -> None:
    assert assess_risk(memory_over_share=mem_over, cpu_over_share=cpu_over, confidence=conf, recent_oom=oom) is risk
