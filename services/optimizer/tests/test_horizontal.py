"""The HPA algorithm: formula, tolerance, scale-down stabilization, bounds (table-driven)."""

from __future__ import annotations

import pytest

from opsbus.optimizer.domain.horizontal import HorizontalPolicy, desired_replicas, recommend_replicas


@pytest.mark.parametrize(
    ("current", "utilization", "target", "expected"),
    [
        (4, 0.9, 0.7, 6),  # ceil(4 x 1.2857) = 6
        (4, 0.75, 0.7, 4),  # ratio 1.071: inside the 0.1 tolerance
        (3, 0.76, 0.7, 3),  # ratio 1.086: inside
        (3, 0.78, 0.7, 4),  # ratio 1.114: outside
        (10, 0.35, 0.7, 5),  # half the target: half the pods
        (10, 0.62, 0.7, 9),  # ratio 0.886: outside, ceil(8.86) = 9
        (1, 0.05, 0.5, 1),  # never below one
        (2, 1.0, 0.5, 4),  # the HPA docs' example: 200m used of 100m target -> double
        (0, 0.9, 0.7, 0),  # scaled to zero stays there
    ],
)
def test_hpa_formula_with_tolerance(current: int, utilization: float, target: float, expected: int) -> None:
    assert desired_replicas(current, utilization, target, tolerance=0.1) == expected


def test_scale_down_is_held_at_the_highest_recommendation_within_the_window() -> None:
    policy = HorizontalPolicy(target_utilization=0.5, scale_down_stabilization_seconds=300)
    history = [(1000.0, 8), (1200.0, 6)]
    r = recommend_replicas(10, 0.2, policy, history, now=1250.0)  # raw: 4
    assert r.raw == 4
    assert r.recommended == 8
    assert "held at 8" in r.reason
    later = recommend_replicas(10, 0.2, policy, r.history, now=1601.0)  # both older than 300 s now
    assert later.recommended == 4


def test_without_stabilization_the_dip_sheds_pods_at_once() -> None:
    policy = HorizontalPolicy(target_utilization=0.5, scale_down_stabilization_seconds=0)
    r = recommend_replicas(10, 0.2, policy, [(1000.0, 8)], now=1250.0)
    assert r.recommended == 4


def test_scale_up_is_immediate_despite_lower_history() -> None:
    policy = HorizontalPolicy(target_utilization=0.5)
    r = recommend_replicas(4, 1.0, policy, [(1000.0, 2), (1100.0, 3)], now=1200.0)
    assert r.recommended == 8


def test_default_stabilization_window_is_the_hpa_default() -> None:
    assert HorizontalPolicy().scale_down_stabilization_seconds == 300
    assert HorizontalPolicy().tolerance == 0.1


def test_bounds_apply_after_the_formula() -> None:
    policy = HorizontalPolicy(
        target_utilization=0.5, min_replicas=3, max_replicas=6, scale_down_stabilization_seconds=0
    )
    assert recommend_replicas(4, 0.1, policy, [], now=0.0).recommended == 3
    assert recommend_replicas(4, 2.0, policy, [], now=0.0).recommended == 6
