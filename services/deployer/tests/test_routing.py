"""Route weights (HTTPRoute, VirtualService) and the traffic-weighted canary's transitions, with an injected clock."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.events.payloads.deploy import (
    AnalysisOutcome,
    CanarySpec,
    DeployFailureReason,
    Measurement,
    RouterKind,
    TrafficRouter,
)
from opsbus.deployer.domain import routing
from opsbus.deployer.domain.canary import (
    CanaryState,
    Decision,
    Outcome,
    PromoteStable,
    ScaleCanary,
    SetWeight,
    Stage,
    advance,
    start,
)
from opsbus.deployer.domain.progression import Observation, Tracking

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
HTTP = TrafficRouter(kind=RouterKind.HTTP_ROUTE, name="web", stable_service="web", canary_service="web-canary")
ISTIO = TrafficRouter(kind=RouterKind.VIRTUAL_SERVICE, name="web", stable_service="web", canary_service="web-canary")
STABLE = Observation(generation=1, observed_generation=1, spec_replicas=3, replicas=3, updated=3, available=3)


def httproute() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "resourceVersion": "41"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}], "backendRefs": [{"name": "admin"}]},
                {"backendRefs": [{"name": "web", "port": 8080}]},
            ],
        },
    }


def virtualservice() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "resourceVersion": "7"},
        "spec": {
            "hosts": ["web.example"],
            "http": [
                {"match": [{"uri": {"prefix": "/v0"}}], "route": [{"destination": {"host": "legacy"}}]},
                {"route": [{"destination": {"host": "web.shop.svc.cluster.local", "port": {"number": 80}}}]},
            ],
        },
    }


def applied(route: dict[str, Any], patch: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """What the apiserver does with our patch (only `test` and `replace` occur), and the version it gives."""
    out = copy.deepcopy(route)
    for op in patch:
        *parents, last = op["path"].strip("/").split("/")
        target: Any = out
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if op["op"] == "test":
            assert target[last] == op["value"]
        else:
            assert op["op"] == "replace"
            target[int(last) if isinstance(target, list) else last] = op["value"]
    out["metadata"]["resourceVersion"] = version
    return out


def test_httproute_weights_touch_only_the_stable_rule() -> None:
    route = httproute()
    patch = routing.weight_patch(HTTP, route, 10)
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}
    after = applied(route, patch, "42")
    assert after["spec"]["rules"][0] == route["spec"]["rules"][0]
    assert after["spec"]["rules"][1]["backendRefs"] == [
        {"name": "web", "port": 8080, "weight": 90},
        {"name": "web-canary", "port": 8080, "weight": 10},
    ]
    assert after["spec"]["parentRefs"] == [{"name": "gw"}]
    assert routing.observe(HTTP, after).canary_weight == 10
    back = applied(after, routing.weight_patch(HTTP, after, 0), "43")
    assert back["spec"]["rules"][1]["backendRefs"][0]["weight"] == 100
    assert back["spec"]["rules"][1]["backendRefs"][1]["weight"] == 0


def test_virtualservice_weights_keep_the_host_suffix_and_port() -> None:
    route = virtualservice()
    after = applied(route, routing.weight_patch(ISTIO, route, 30), "8")
    assert after["spec"]["http"][0] == route["spec"]["http"][0]
    assert after["spec"]["http"][1]["route"] == [
        {"destination": {"host": "web.shop.svc.cluster.local", "port": {"number": 80}}, "weight": 70},
        {"destination": {"host": "web-canary.shop.svc.cluster.local", "port": {"number": 80}}, "weight": 30},
    ]
    assert routing.observe(ISTIO, after).canary_weight == 30


def test_a_route_before_any_write_has_no_opsbus_weight_and_one_without_the_stable_is_refused() -> None:
    assert routing.observe(HTTP, httproute()).canary_weight is None  # a lone backendRef weighs 1, not 100
    assert routing.observe(ISTIO, virtualservice()).canary_weight == 0  # a lone destination takes it all
    route = httproute()
    route["spec"]["rules"].pop(1)
    with pytest.raises(routing.RouteRefused, match="no rule sending traffic to Service web"):
        routing.observe(HTTP, route)


def test_someone_elses_weights_read_as_another_weight_or_none() -> None:
    route = applied(httproute(), routing.weight_patch(HTTP, httproute(), 30), "50")
    backends = route["spec"]["rules"][1]["backendRefs"]
    backends[0]["weight"], backends[1]["weight"] = 50, 50
    assert routing.observe(HTTP, route).canary_weight == 50  # not the 30 opsbus wrote
    backends[0]["weight"], backends[1]["weight"] = 20, 40
    assert routing.observe(HTTP, route).canary_weight is None
    assert "rule 1: 20/40" in routing.observe(HTTP, route).describe()


# The planner with a router.


def spec(*steps: dict[str, Any], router: TrafficRouter = HTTP) -> CanarySpec:
    return CanarySpec.model_validate({"steps": list(steps), "router": router.model_dump()})


def canary_obs(replicas: int, generation: int = 2) -> Observation:
    return Observation(
        generation=generation,
        observed_generation=generation,
        spec_replicas=replicas,
        replicas=replicas,
        updated=replicas,
        available=replicas,
    )


def view(canary: int, stable: int | None = None) -> routing.Route:
    return routing.Route("1", (routing.RuleWeights(1, 100 - canary if stable is None else stable, canary),))


def go(
    s: CanarySpec,
    state: CanaryState,
    now: datetime,
    *,
    canary: Observation | None,
    route: routing.Route | None,
    stable: Observation = STABLE,
) -> Decision:
    return advance(
        s,
        state,
        stable=stable,
        canary=canary,
        deadline_seconds=60,
        grace_seconds=0,
        promote_requested=False,
        now=now,
        route=route,
    )


def test_weights_follow_the_steps_independently_of_replicas_and_end_at_zero_after_promotion() -> None:
    s = spec({"weight": 10}, {"weight": 30}, {"weight": 60}, {"weight": 100})
    state, now = start(T0), T0
    # SCALE: the canary gets the stable's replica count once (not ceil(3*10/90) = 1).
    d = go(s, state, now, canary=canary_obs(0, generation=1), route=view(0, stable=1))
    assert d.effect == ScaleCanary(3)
    written: list[int] = []
    size = canary_obs(3)
    route = view(0, stable=1)
    for _ in range(40):
        now += timedelta(seconds=1)
        d = go(s, d.state, now, canary=size, route=route)
        assert d.outcome in (Outcome.CONTINUE, Outcome.SUCCEEDED), d.message
        if isinstance(d.effect, SetWeight):
            written.append(d.effect.weight)
            route = view(d.effect.weight)
        if isinstance(d.effect, ScaleCanary):
            assert d.state.stage is Stage.CLEANUP
            size = canary_obs(d.effect.replicas, generation=3)
        if isinstance(d.effect, PromoteStable):
            assert written == [10, 30, 60, 100]  # 100% on the canary is a step before promotion
            d = replace(
                d, state=replace(d.state, tracking=Tracking(2, 60, now, None, 0))
            )  # the executor tracks the stable's new generation
        if d.state.stage is Stage.PROMOTE:
            promoted = Observation(
                generation=2, observed_generation=2, spec_replicas=3, replicas=3, updated=3, available=3
            )
            d = go(s, d.state, now, canary=size, route=route, stable=promoted)
            assert d.effect == SetWeight(0)
            written.append(0)
            route = view(0)
        if d.outcome is Outcome.SUCCEEDED:
            break
    assert d.outcome is Outcome.SUCCEEDED
    assert written == [10, 30, 60, 100, 0]


def test_an_edit_of_the_weights_pauses_without_a_write_and_resumes_when_they_are_back() -> None:
    s = spec({"weight": 10, "pause_seconds": 5}, {"weight": 50})
    state = CanaryState(step=0, stage=Stage.PAUSE, since=T0, weight=10)
    d = go(s, state, T0 + timedelta(seconds=10), canary=canary_obs(3), route=view(0, stable=1))
    assert d.outcome is Outcome.PAUSED
    assert d.effect is None
    assert "edited by someone else" in d.message
    assert "opsbus set 90/10" in d.message
    assert "rule 1: 1/0" in d.message
    d = go(s, state, T0 + timedelta(seconds=10), canary=canary_obs(3), route=view(10))
    assert d.outcome is Outcome.CONTINUE
    assert d.state.step == 1


def test_a_route_that_is_gone_fails_the_rollout() -> None:
    s = spec({"weight": 10})
    d = go(s, start(T0), T0, canary=canary_obs(3), route=None)
    assert d.outcome is Outcome.FAILED
    assert d.reason is DeployFailureReason.APPLY_FAILED


def test_a_failing_analysis_at_a_weight_fails_the_step() -> None:
    analysis = {
        "metrics": [
            {
                "name": "ok",
                "provider": {"query": "q"},
                "success_condition": {"operator": ">=", "threshold": 0.9},
                "interval_seconds": 1,
                "count": 1,
            }
        ]
    }
    s = spec({"weight": 10}, {"weight": 30, "analysis": analysis}, router=ISTIO)
    bad = Measurement(value=0.1, outcome=AnalysisOutcome.FAILED)
    state = CanaryState(step=1, stage=Stage.ANALYSE, since=T0, weight=30, measurements={"ok": [bad]})
    d = go(s, state, T0 + timedelta(seconds=2), canary=canary_obs(3), route=view(30))
    assert d.outcome is Outcome.FAILED
    assert d.reason is DeployFailureReason.ANALYSIS_FAILED
    assert d.state.step == 1
