"""A request against the live Deployment: specific refusals, and JSON Patches with a resourceVersion test."""

from __future__ import annotations

from typing import Any

import pytest

from opsbus.common.events.payloads.common import Actor, ActorKind, WorkloadRef
from opsbus.common.events.payloads.deploy import DeployFailureReason, DeployRequested, Strategy
from opsbus.deployer.domain.changes import (
    ChangeRefused,
    canary_deployment,
    plan_change,
    plan_template,
    promoted_template,
)

LIVE: dict[str, Any] = {
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "41", "annotations": {"a": "b"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "proxy:1"}]},
        },
    },
}


def request(**kw: Any) -> DeployRequested:
    base: dict[str, Any] = {
        "cluster": "sandbox",
        "workload": WorkloadRef(kind="Deployment", namespace="shop", name="web"),
        "strategy": Strategy.ROLLING,
        "images": {"app": "app:2"},
        "progress_deadline_seconds": 60,
        "requester": Actor(kind=ActorKind.USER, id="ana"),
    }
    return DeployRequested(**{**base, **kw})


def test_image_change_patches_only_that_container_behind_a_resource_version_test() -> None:
    change = plan_change(LIVE, request(), "r1")
    assert change.patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}
    assert {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:2"} in change.patch
    assert not any("containers/1" in op["path"] for op in change.patch)
    assert {"op": "add", "path": "/spec/progressDeadlineSeconds", "value": 60} in change.patch
    assert change.images == {"app": "app:2", "sidecar": "proxy:1"}
    assert change.previous_template == LIVE["spec"]["template"]


def test_unknown_container_is_refused_naming_the_containers_there_are() -> None:
    with pytest.raises(ChangeRefused) as caught:
        plan_change(LIVE, request(images={"ap": "app:2"}), "r1")
    assert caught.value.reason is DeployFailureReason.INVALID_REQUEST
    assert "no container named ap (containers: app, sidecar)" in caught.value.message


def test_manifest_must_keep_the_selector_and_its_labels() -> None:
    manifest: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {"labels": {}}}},
    }
    with pytest.raises(ChangeRefused, match="labels do not match"):
        plan_change(LIVE, request(images={}, manifest=manifest), "r1")
    manifest["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ChangeRefused, match="immutable"):
        plan_change(LIVE, request(images={}, manifest=manifest), "r1")


def test_manifest_replaces_the_template() -> None:
    template = {
        "metadata": {"labels": {"app": "web", "opsbus.io/chaos": "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": "app:bad"}]},
    }
    manifest = {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": template}}
    change = plan_change(LIVE, request(images={}, manifest=manifest), "r1")
    assert {"op": "replace", "path": "/spec/template", "value": template} in change.patch


def test_recreate_switches_the_strategy() -> None:
    change = plan_change(LIVE, request(strategy=Strategy.RECREATE), "r1")
    assert {"op": "replace", "path": "/spec/strategy", "value": {"type": "Recreate"}} in change.patch


def test_strategies_not_built_yet_are_refused_specifically() -> None:
    canary = {"steps": [{"weight": 50}]}
    with pytest.raises(ChangeRefused, match="canary is not a patch"):
        plan_change(LIVE, request(strategy=Strategy.CANARY, canary=canary), "r1")
    sts = request(workload=WorkloadRef(kind="StatefulSet", namespace="shop", name="web"))
    with pytest.raises(ChangeRefused, match="Deployments only"):
        plan_change({**LIVE, "kind": "StatefulSet"}, sts, "r1")


def test_rollback_patch_replaces_the_template_and_marks_the_rollout() -> None:
    live = {**LIVE, "metadata": {"resourceVersion": "7"}}
    ops = plan_template(live, {"spec": {}}, "r9")
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert ops[1] == {"op": "add", "path": "/metadata/annotations", "value": {"opsbus.io/rollout-id": "r9"}}
    assert ops[-1] == {"op": "replace", "path": "/spec/template", "value": {"spec": {}}}


def test_canary_deployment_shares_the_service_labels_and_starts_at_zero() -> None:
    req = request(strategy=Strategy.CANARY, canary={"steps": [{"weight": 25}]})
    body = canary_deployment(LIVE, req, "r1")
    assert body["metadata"]["name"] == "web-canary"
    assert body["spec"]["replicas"] == 0
    assert body["spec"]["selector"] == {"matchLabels": {"app": "web", "opsbus.io/canary": "true"}}
    assert body["spec"]["template"]["metadata"]["labels"] == {"app": "web", "opsbus.io/canary": "true"}
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"
    assert LIVE["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"  # the live copy is untouched
    promoted = promoted_template(body["spec"]["template"])
    assert promoted["metadata"]["labels"] == {"app": "web"}


def test_background_analysis_with_canary_is_refused_not_ignored() -> None:
    analysis = {
        "metrics": [{"name": "ok", "provider": {"query": "q"}, "success_condition": {"operator": ">=", "threshold": 1}}]
    }
    req = request(strategy=Strategy.CANARY, canary={"steps": [{"weight": 25}]}, analysis=analysis)
    with pytest.raises(ChangeRefused, match="background analysis is not supported with canary"):
        canary_deployment(LIVE, req, "r1")
