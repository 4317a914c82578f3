"""Pure parts of the history port and the inventory: how samples fold into steps, the pod pattern of a
Deployment, the measured start-up time, what the pods hold after an in-place resize, the forecast settings."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from opsbus.optimizer.cluster import _pod_containers, _startup
from opsbus.optimizer.domain.planning import ContainerSpec
from opsbus.optimizer.history import assemble, fold, pod_pattern, regular
from opsbus.optimizer.settings import OptimizerOptions
from opsbus.optimizer.usage import Sample


def test_fold_keeps_per_pod_mean_total_and_peak_per_step_and_drops_unowned_pods() -> None:
    owner = {("ns", "a"): "web", ("ns", "b"): "web"}
    samples = [
        Sample(0.0, "ns", "a", "app", 100.0, 10.0),
        Sample(0.0, "ns", "b", "app", 300.0, 30.0),
        Sample(20.0, "ns", "a", "app", 200.0, 50.0),
        Sample(0.0, "ns", "x", "app", 9_000.0, 9.0),
    ]
    folded = fold(samples, owner, step=60.0)
    assert folded == {("ns", "web", "app", 0.0): [2.0, 200.0 + 200.0, 400.0 + 200.0, 50.0]}
    h = assemble(folded, 0.0, 120.0, 60.0)
    assert h.cpu["app"].values[0] == 200.0
    assert math.isnan(h.cpu["app"].values[1])
    assert h.demand is not None and h.demand.values[0] == 300.0
    assert h.memory["app"].values[0] == 50.0


def test_regular_aligns_to_the_step_and_marks_gaps() -> None:
    s = regular({60.0: 1.0, 180.0: 3.0}, 70.0, 240.0, 60.0)
    assert (s.start, len(s.values)) == (60.0, 3)
    assert s.values[0] == 1.0 and math.isnan(s.values[1]) and s.values[2] == 3.0


def test_pod_pattern_matches_the_deployments_pods_only() -> None:
    p = re.compile(pod_pattern("web.v2"))
    assert p.fullmatch("web.v2-7d9f8c6b5-x2k9q")
    assert not p.fullmatch("webxv2-7d9f8c6b5-x2k9q")  # the dot is literal
    assert not p.fullmatch("web.v2-canary-7d9f8c6b5-x2k9q")


def _pod(start: datetime | None, ready: datetime | None, phase: str = "Running", cpu: str = "1") -> SimpleNamespace:
    conditions = [SimpleNamespace(type="Ready", status="True", last_transition_time=ready)] if ready else []
    container = SimpleNamespace(
        name="app", resources=SimpleNamespace(requests={"cpu": cpu, "memory": "1Gi"}, limits=None)
    )
    return SimpleNamespace(
        status=SimpleNamespace(start_time=start, conditions=conditions, phase=phase),
        spec=SimpleNamespace(containers=[container]),
    )


def test_startup_is_the_median_start_to_ready_of_ready_pods() -> None:
    t = datetime(2026, 12, 7, tzinfo=UTC)
    pods = [_pod(t, t + timedelta(seconds=s)) for s in (10, 40, 20)] + [_pod(t, None)]
    assert _startup(pods) == 20.0
    assert _startup([_pod(t, None)]) is None


def test_pods_hold_what_most_running_pods_have() -> None:
    template = (ContainerSpec("app", cpu_request=1000, memory_request=2**30),)
    pods = [_pod(None, None, cpu="500m"), _pod(None, None, cpu="500m"), _pod(None, None, cpu="1")]
    (held,) = _pod_containers(template, pods)
    assert held.cpu_request == 500
    assert _pod_containers(template, [_pod(None, None, phase="Pending")]) == ()


def test_forecast_settings_become_the_domain_policies() -> None:
    o = OptimizerOptions.model_validate(
        {"interval_seconds": 120, "forecast": {"periods_seconds": [900], "max_points": 300, "upper_quantile": 0.9}}
    )
    policy = o.forecast.policy()
    assert (policy.periods, policy.max_points, policy.upper_quantile) == ((900.0,), 300, 0.9)
    assert o.forecast.predictive(o.interval_seconds).cycle_seconds == 120
