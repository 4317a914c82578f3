"""What a request changes in a live Deployment: validation against the object, and the JSON Patch to apply.

Why this module exists: a request is validated twice. Its shape is checked where it is made (the payload
model); whether it *fits the live object* (the containers it names exist, the manifest keeps the selector,
the kind is one this deployer rolls out) can only be checked against the apiserver's copy, at the moment the
rollout starts. Errors are specific, so the requester learns what to fix from the `deploy.failed` message.

Every patch starts with a JSON Patch `test` of `metadata.resourceVersion`: if anyone changed the object since
we read it, the apiserver refuses the patch and the executor re-reads and re-plans (optimistic concurrency).
Pure: JSON in, JSON Patch out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsbus.common.events.payloads.deploy import DeployFailureReason, DeployRequested, Strategy

ROLLOUT_ANNOTATION = "opsbus.io/rollout-id"
SUPPORTED_KINDS = ("Deployment",)


class ChangeRefused(Exception):
    """The request does not fit the live object."""

    def __init__(self, reason: DeployFailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Change:
    patch: list[dict[str, Any]]
    previous_template: dict[str, Any]
    images: dict[str, str]  # container -> image after the change


def _precondition(live: Mapping[str, Any], rollout_id: str) -> list[dict[str, Any]]:
    meta = live.get("metadata") or {}
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
    ]
    if meta.get("annotations") is None:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {ROLLOUT_ANNOTATION: rollout_id}})
    else:
        ops.append({"op": "add", "path": "/metadata/annotations/opsbus.io~1rollout-id", "value": rollout_id})
    return ops


def images_of(template: Mapping[str, Any]) -> dict[str, str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return {str(c.get("name")): str(c.get("image")) for c in containers}


def plan_change(live: Mapping[str, Any], request: DeployRequested, rollout_id: str) -> Change:
    """The patch that rolls `request` out on the live Deployment `live` (rolling or recreate)."""
    kind = live.get("kind", request.workload.kind)
    if request.workload.kind not in SUPPORTED_KINDS or kind not in SUPPORTED_KINDS:
        raise ChangeRefused(
            DeployFailureReason.INVALID_REQUEST,
            f"{request.workload}: this deployer rolls out Deployments only "
            "(StatefulSets are planned by domain/stateful.py; DaemonSets are not supported)",
        )
    if request.strategy not in (Strategy.ROLLING, Strategy.RECREATE):
        raise ChangeRefused(
            DeployFailureReason.INVALID_REQUEST,
            f"strategy {request.strategy.value} is not a patch of the Deployment (plan_change: rolling or recreate)",
        )
    ops, previous, images = template_change(live, request, rollout_id)
    ops.append({"op": "add", "path": "/spec/progressDeadlineSeconds", "value": request.progress_deadline_seconds})
    if request.strategy is Strategy.RECREATE:
        ops.append({"op": "replace", "path": "/spec/strategy", "value": {"type": "Recreate"}})
    return Change(patch=ops, previous_template=previous, images=images)


def template_change(
    live: Mapping[str, Any], request: DeployRequested, rollout_id: str
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str]]:
    """The precondition and the pod-template part of a change (any workload kind): ops, old template, images."""
    spec = live.get("spec") or {}
    template = spec.get("template") or {}
    previous = copy.deepcopy(dict(template))
    ops = _precondition(live, rollout_id)
    if request.manifest is not None:
        new_spec = request.manifest.get("spec") or {}
        new_template = new_spec.get("template")
        if not isinstance(new_template, dict):
            raise ChangeRefused(DeployFailureReason.INVALID_REQUEST, "manifest has no spec.template")
        selector = new_spec.get("selector")
        if selector is not None and selector != spec.get("selector"):
            raise ChangeRefused(
                DeployFailureReason.INVALID_REQUEST,
                f"manifest changes spec.selector ({selector} != {spec.get('selector')}); the selector is immutable",
            )
        wanted = spec.get("selector", {}).get("matchLabels") or {}
        labels = (new_template.get("metadata") or {}).get("labels") or {}
        missing = {k: v for k, v in wanted.items() if labels.get(k) != v}
        if missing:
            raise ChangeRefused(
                DeployFailureReason.INVALID_REQUEST,
                f"manifest pod template labels do not match the workload's selector: missing {missing}",
            )
        if not images_of(new_template):
            raise ChangeRefused(DeployFailureReason.INVALID_REQUEST, "manifest pod template has no containers")
        ops.append({"op": "replace", "path": "/spec/template", "value": new_template})
        images = images_of(new_template)
    else:
        containers = (template.get("spec") or {}).get("containers") or []
        names = [str(c.get("name")) for c in containers]
        unknown = sorted(set(request.images) - set(names))
        if unknown:
            raise ChangeRefused(
                DeployFailureReason.INVALID_REQUEST,
                f"{request.workload} has no container named {', '.join(unknown)} (containers: {', '.join(names)})",
            )
        for index, name in enumerate(names):
            if name in request.images:
                ops.append(
                    {
                        "op": "replace",
                        "path": f"/spec/template/spec/containers/{index}/image",
                        "value": request.images[name],
                    }
                )
        images = {**images_of(template), **request.images}
    return ops, previous, images


def plan_template(live: Mapping[str, Any], template: Mapping[str, Any], rollout_id: str) -> list[dict[str, Any]]:
    """The patch that puts `template` back (rollback, abort)."""
    return [*_precondition(live, rollout_id), {"op": "replace", "path": "/spec/template", "value": dict(template)}]


def same_template(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Templates equal once the controller's pod-template-hash label is ignored."""

    def norm(t: Mapping[str, Any]) -> dict[str, Any]:
        t2 = copy.deepcopy(dict(t))
        labels = (t2.get("metadata") or {}).get("labels") or {}
        labels.pop("pod-template-hash", None)
        return t2

    return norm(a) == norm(b)


CANARY_LABEL = "opsbus.io/canary"
CANARY_SUFFIX = "-canary"
GREEN_LABEL = "opsbus.io/green"
GREEN_SUFFIX = "-green"
HASH_LABEL = "pod-template-hash"


def canary_name(stable: str) -> str:
    return f"{stable}{CANARY_SUFFIX}"


def new_template(
    live: Mapping[str, Any], request: DeployRequested, rollout_id: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The pod template `request` asks for, validated against `live` exactly as a rolling update would be."""
    as_rolling = request.model_copy(update={"strategy": Strategy.ROLLING, "canary": None, "blue_green": None})
    change = plan_change(live, as_rolling, rollout_id)
    if request.manifest is not None:
        template = copy.deepcopy(dict((request.manifest.get("spec") or {}).get("template") or {}))
    else:
        template = copy.deepcopy(dict((live.get("spec") or {}).get("template") or {}))
        for container in (template.get("spec") or {}).get("containers") or []:
            if container.get("name") in request.images:
                container["image"] = request.images[container["name"]]
    return template, change.images


def canary_deployment(live: Mapping[str, Any], request: DeployRequested, rollout_id: str) -> dict[str, Any]:
    """The `<name>-canary` Deployment: the new template, the stable selector's labels (so the Service that
    selects the stable pods selects the canary pods too) plus `opsbus.io/canary`, zero replicas to start."""
    if request.strategy is not Strategy.CANARY:
        raise ChangeRefused(DeployFailureReason.INVALID_REQUEST, "canary_deployment needs a canary request")
    return _beside(live, request, rollout_id, suffix=CANARY_SUFFIX, label=CANARY_LABEL, replicas=0)


def green_deployment(live: Mapping[str, Any], request: DeployRequested, rollout_id: str) -> dict[str, Any]:
    """The `<name>-green` Deployment of a blue-green rollout: the new template at the stable replica count."""
    replicas = int((live.get("spec") or {}).get("replicas", 1))
    return _beside(live, request, rollout_id, suffix=GREEN_SUFFIX, label=GREEN_LABEL, replicas=replicas)


def _beside(
    live: Mapping[str, Any], request: DeployRequested, rollout_id: str, *, suffix: str, label: str, replicas: int
) -> dict[str, Any]:
    if request.analysis is not None:
        # Ignoring it would let the rollout pass unanalysed: refuse rather than fail open.
        raise ChangeRefused(
            DeployFailureReason.INVALID_REQUEST,
            f"background analysis is not supported with {request.strategy.value} yet: put it in the canary steps "
            "or in blue_green.pre_promotion_analysis",
        )
    template, _ = new_template(live, request, rollout_id)
    meta = live.get("metadata") or {}
    spec = live.get("spec") or {}
    selector = dict((spec.get("selector") or {}).get("matchLabels") or {})
    if (spec.get("selector") or {}).get("matchExpressions"):
        raise ChangeRefused(
            DeployFailureReason.INVALID_REQUEST, "canary needs a Deployment selected by matchLabels only"
        )
    labels = {**((template.get("metadata") or {}).get("labels") or {}), **selector, label: "true"}
    template.setdefault("metadata", {})["labels"] = labels
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{meta.get('name')}{suffix}",
            "namespace": meta.get("namespace"),
            "labels": {**(meta.get("labels") or {}), label: "true"},
            "annotations": {ROLLOUT_ANNOTATION: rollout_id},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {**selector, label: "true"}},
            "template": template,
            "progressDeadlineSeconds": request.progress_deadline_seconds,
        },
    }


def promoted_template(canary_template: Mapping[str, Any]) -> dict[str, Any]:
    """The canary's (or green stack's) template for the stable Deployment: without our stack labels."""
    template = copy.deepcopy(dict(canary_template))
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(CANARY_LABEL, None)
    labels.pop(GREEN_LABEL, None)
    labels.pop("pod-template-hash", None)
    return template


def select_patch(service: Mapping[str, Any], original: Mapping[str, str], pod_hash: str | None) -> list[dict[str, Any]]:
    """Point a Service at the pods of one ReplicaSet (`pod_hash`), or back at its original selector (None)."""
    selector = {**original, HASH_LABEL: pod_hash} if pod_hash else dict(original)
    version = (service.get("metadata") or {}).get("resourceVersion")
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/spec/selector", "value": selector},
    ]


def current_hash(deployment: Mapping[str, Any], replica_sets: list[Mapping[str, Any]]) -> str | None:
    """The pod-template-hash of the Deployment's current ReplicaSet (the one at its revision)."""
    revision = ((deployment.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision")
    for rs in replica_sets:
        meta = rs.get("metadata") or {}
        if (
            revision is not None
            and (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision") == revision
        ):
            value = (meta.get("labels") or {}).get(HASH_LABEL)
            return str(value) if value else None
    return None
