"""A weight write on a traffic router as the change timeline shows it (pure: route objects in, a Write out)."""

from __future__ import annotations

import copy
import json
from typing import Any

from opsbus.common.events.payloads.change import ChangeKind
from opsbus.common.events.payloads.common import Actor, ActorKind, WorkloadRef
from opsbus.common.events.payloads.deploy import DeployRequested, RouterKind, Strategy, TrafficRouter
from opsbus.deployer.executing.recording import route_write

HTTP = TrafficRouter(kind=RouterKind.HTTP_ROUTE, name="web", stable_service="web", canary_service="web-canary")
ISTIO = TrafficRouter(kind=RouterKind.VIRTUAL_SERVICE, name="web", stable_service="web", canary_service="web-canary")
REQUEST = DeployRequested(
    cluster="sandbox",
    workload=WorkloadRef(kind="Deployment", namespace="shop", name="web"),
    strategy=Strategy.ROLLING,
    images={"app": "app:2"},
    requester=Actor(kind=ActorKind.USER, id="ana"),
)


def httproute(weights: tuple[int, int] | None) -> dict[str, Any]:
    backends: list[dict[str, Any]] = [{"name": "web", "port": 80}]
    if weights is not None:
        backends = [{"name": "web", "port": 80, "weight": weights[0]}, {"name": "web-canary", "weight": weights[1]}]
    return {
        "metadata": {"name": "web", "resourceVersion": "41", "uid": "u-1"},
        "spec": {"rules": [{"backendRefs": [{"name": "admin"}]}, {"backendRefs": backends}]},
    }


def test_a_weight_step_is_one_entry_per_managed_rule_with_both_weights_before_and_after() -> None:
    after = httproute((90, 10))
    after["metadata"]["resourceVersion"] = "42"
    write = route_write(REQUEST, HTTP, "deploy.canary.route", httproute(None), after)

    assert write.action == "deploy.canary.route"
    assert (write.object.kind, write.object.namespace, write.object.name) == ("HTTPRoute", "shop", "web")
    assert write.object.api_version == "gateway.networking.k8s.io/v1" and write.object.uid == "u-1"
    assert write.workload == REQUEST.workload
    assert write.resource_version == "42"  # the apiserver's answer: one timeline id per write
    ((kind, change),) = write.entries  # the other rule (admin) is not ours and is not shown
    assert kind is ChangeKind.ACTION and change.path == "spec.rules[1].weight"
    assert json.loads(change.before or "") == {"web": 1, "web-canary": 0}  # an HTTPRoute backend weighs 1 unset
    assert json.loads(change.after or "") == {"web": 90, "web-canary": 10}


def test_a_restore_on_a_virtual_service_shows_the_traffic_going_back_to_the_stable() -> None:
    before: dict[str, Any] = {
        "metadata": {"name": "web", "resourceVersion": "7"},
        "spec": {
            "http": [
                {
                    "route": [
                        {"destination": {"host": "web"}, "weight": 70},
                        {"destination": {"host": "web-canary"}, "weight": 30},
                    ]
                }
            ]
        },
    }
    after = copy.deepcopy(before)
    after["metadata"]["resourceVersion"] = "8"
    after["spec"]["http"][0]["route"][0]["weight"] = 100
    after["spec"]["http"][0]["route"][1]["weight"] = 0
    write = route_write(REQUEST, ISTIO, "deploy.canary.route_restore", before, after)

    assert write.object.kind == "VirtualService" and write.object.api_version == "networking.istio.io/v1"
    ((_, change),) = write.entries
    assert change.path == "spec.http[0].weight"
    assert json.loads(change.before or "") == {"web": 70, "web-canary": 30}
    assert json.loads(change.after or "") == {"web": 100, "web-canary": 0}
