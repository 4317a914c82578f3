"""What the watcher watches and how an object is kept: stripped of bulk, and summarised for `cluster.event`.

Objects are plain JSON dicts as the apiserver serves them. `strip()` drops what no detector or consumer reads
(managedFields, the last-applied annotation, pod spec volumes and env...) so memory is proportional to what
matters. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from opsbus.common.events.payloads.cluster import ChangeType, ClusterEvent
from opsbus.common.events.payloads.common import (
    ConditionSummary,
    ContainerState,
    KubeEventSummary,
    OwnerRef,
    ReplicaCounts,
    ResourceRef,
)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One watched resource type: where it lives in the API and what kind its objects are."""

    kind: str
    api_version: str  # "v1", "apps/v1", "events.k8s.io/v1"
    plural: str
    namespaced: bool = True
    cluster_events: bool = True  # published as `cluster.event`; ConfigMaps, Secrets and HPAs only feed the timeline

    @property
    def base_path(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def path(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{self.base_path}/namespaces/{namespace}/{self.plural}"
        return f"{self.base_path}/{self.plural}"


POD = Resource("Pod", "v1", "pods")
NODE = Resource("Node", "v1", "nodes", namespaced=False)
DEPLOYMENT = Resource("Deployment", "apps/v1", "deployments")
REPLICASET = Resource("ReplicaSet", "apps/v1", "replicasets")
STATEFULSET = Resource("StatefulSet", "apps/v1", "statefulsets")
DAEMONSET = Resource("DaemonSet", "apps/v1", "daemonsets")
JOB = Resource("Job", "batch/v1", "jobs")
EVENT = Resource("Event", "events.k8s.io/v1", "events")
CONFIGMAP = Resource("ConfigMap", "v1", "configmaps", cluster_events=False)
SECRET = Resource("Secret", "v1", "secrets", cluster_events=False)
HPA = Resource("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", cluster_events=False)
RESOURCES: tuple[Resource, ...] = (
    POD,
    NODE,
    DEPLOYMENT,
    REPLICASET,
    STATEFULSET,
    DAEMONSET,
    JOB,
    EVENT,
    CONFIGMAP,
    SECRET,
    HPA,
)

_DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_MESSAGE_MAX = 1024


def key_of(obj: Obj) -> str:
    """Cache key: `namespace/name`, or `name` for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def uid_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def strip(obj: Obj) -> Obj:
    """A copy of `obj` without the bulk no detector reads: managedFields, big annotations, pod spec details."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k not in _DROP_ANNOTATIONS}
    out: Obj = {k: v for k, v in obj.items() if k != "metadata"}
    out["metadata"] = meta
    kind = obj.get("kind")
    spec = obj.get("spec")
    if kind == "Pod" and isinstance(spec, dict):
        out["spec"] = {
            "nodeName": spec.get("nodeName"),
            "containers": [_slim_container(c) for c in spec.get("containers") or []],
            "initContainers": [_slim_container(c) for c in spec.get("initContainers") or []],
        }
    elif kind in TEMPLATED and isinstance(spec, dict):
        out["spec"] = {k: v for k, v in spec.items() if k != "template"}
        if isinstance(spec.get("template"), dict):
            out["spec"]["template"] = template_summary(spec["template"])
    elif kind in {"ReplicaSet", "Job"} and isinstance(spec, dict):
        out["spec"] = {k: v for k, v in spec.items() if k != "template"}
    elif kind in {"ConfigMap", "Secret"}:
        # Only a digest per key stays: a Secret's value is dropped here, as the list or watch is decoded.
        out.pop("data", None)
        out.pop("binaryData", None)
        out.pop("stringData", None)
        if kind == "Secret":  # tools copy values into annotations (last-applied and others): keep none
            meta.pop("annotations", None)
        out["digests"] = content_digests(obj)
    elif kind == "Node" and isinstance(out.get("status"), dict):
        status = dict(out["status"])
        status.pop("images", None)  # can be hundreds of entries per node
        out["status"] = status
    return out


def _slim_container(c: Obj) -> Obj:
    return {"name": c.get("name"), "image": c.get("image"), "resources": c.get("resources") or {}}


# Workloads whose pod template the change timeline follows.
TEMPLATED = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


def digest(value: bytes) -> str:
    """`sha256:<hex>`: how the timeline names a config value without carrying it."""
    return "sha256:" + hashlib.sha256(value).hexdigest()


def content_digests(obj: Obj) -> dict[str, str]:
    """Key -> digest of a ConfigMap's or Secret's `data` and `binaryData` (Secret data is base64: hashed as is)."""
    out: dict[str, str] = {}
    for field in ("data", "binaryData"):
        for key, value in (obj.get(field) or {}).items():
            out[str(key)] = digest(str(value).encode())
    return out


def _env_value(entry: Obj) -> str:
    if "value" in entry:
        return str(entry.get("value") or "")
    source = entry.get("valueFrom") or {}
    for ref_kind, ref in source.items():
        if isinstance(ref, dict):
            name = ref.get("name") or ref.get("fieldPath") or ref.get("resource") or ""
            key = ref.get("key")
            return f"<{ref_kind} {name}{'/' + str(key) if key else ''}>"
    return ""


def _template_container(c: Obj) -> Obj:
    return {
        "name": c.get("name"),
        "image": c.get("image"),
        "command": list(c.get("command") or []) + list(c.get("args") or []),
        "env": {str(e.get("name")): _env_value(e) for e in c.get("env") or [] if isinstance(e, dict)},
        "envFrom": sorted(_env_from(e) for e in c.get("envFrom") or [] if isinstance(e, dict)),
        "resources": c.get("resources") or {},
    }


def _env_from(entry: Obj) -> str:
    for ref_kind in ("configMapRef", "secretRef"):
        ref = entry.get(ref_kind)
        if isinstance(ref, dict):
            return f"{entry.get('prefix') or ''}<{ref_kind} {ref.get('name')}>"
    return "<unknown>"


def config_refs(pod_spec: Obj) -> list[str]:
    """`ConfigMap/<name>` and `Secret/<name>` a pod spec reads (env, envFrom, volumes, projected volumes)."""
    refs: set[str] = set()
    for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        for e in c.get("env") or []:
            source = (e or {}).get("valueFrom") or {}
            if (source.get("configMapKeyRef") or {}).get("name"):
                refs.add(f"ConfigMap/{source['configMapKeyRef']['name']}")
            if (source.get("secretKeyRef") or {}).get("name"):
                refs.add(f"Secret/{source['secretKeyRef']['name']}")
        for e in c.get("envFrom") or []:
            if ((e or {}).get("configMapRef") or {}).get("name"):
                refs.add(f"ConfigMap/{e['configMapRef']['name']}")
            if ((e or {}).get("secretRef") or {}).get("name"):
                refs.add(f"Secret/{e['secretRef']['name']}")
    volumes = list(pod_spec.get("volumes") or [])
    for v in list(volumes):
        volumes += ((v or {}).get("projected") or {}).get("sources") or []
    for v in volumes:
        if ((v or {}).get("configMap") or {}).get("name"):
            refs.add(f"ConfigMap/{v['configMap']['name']}")
        secret = (v or {}).get("secret") or {}
        if secret.get("secretName") or secret.get("name"):
            refs.add(f"Secret/{secret.get('secretName') or secret.get('name')}")
    return sorted(refs)


def template_summary(template: Obj) -> Obj:
    """What the timeline compares of a pod template: per container image, command+args, env, envFrom and
    resources; the template's annotations (a rollout restart stamps one); the config objects it reads; and one
    digest of everything else (probes, ports, volumes, scheduling), so any other edit still shows."""
    spec = dict(template.get("spec") or {})
    containers = spec.pop("containers", None) or []
    init = spec.pop("initContainers", None) or []
    meta = template.get("metadata") or {}
    rest = {"spec": spec, "labels": meta.get("labels") or {}}
    rest["containerFields"] = [{k: v for k, v in c.items() if k not in _SUMMARISED} for c in containers + init]
    return {
        "containers": [_template_container(c) for c in containers],
        "initContainers": [_template_container(c) for c in init],
        "annotations": dict(meta.get("annotations") or {}),
        "configRefs": config_refs({"containers": containers, "initContainers": init, "volumes": spec.get("volumes")}),
        "other": digest(json.dumps(rest, sort_keys=True, default=str).encode()),
    }


_SUMMARISED = frozenset({"name", "image", "command", "args", "env", "envFrom", "resources"})


# --- time ----------------------------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time as the apiserver writes it (`2025-03-14T09:26:53Z`, maybe with fractions)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _trunc(text: object) -> str | None:
    if text is None:
        return None
    s = str(text)
    return s if len(s) <= _MESSAGE_MAX else s[: _MESSAGE_MAX - 1] + "\u2026"


# --- summaries -----------------------------------------------------------------------------------------


def conditions(obj: Obj) -> dict[str, Obj]:
    """status.conditions by type."""
    return {str(c.get("type")): c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type")}


def container_states(pod: Obj) -> tuple[ContainerState, ...]:
    """Every container's state (init containers first), as the event payloads carry them."""
    spec = pod.get("spec") or {}
    images = {
        c.get("name"): c.get("image") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
    }
    status = pod.get("status") or {}
    out: list[ContainerState] = []
    for init, statuses in ((True, status.get("initContainerStatuses")), (False, status.get("containerStatuses"))):
        for cs in statuses or []:
            out.append(container_state(cs, init=init, image=images.get(cs.get("name"))))
    return tuple(out[:64])


def container_state(cs: Obj, *, init: bool = False, image: str | None = None) -> ContainerState:
    state = cs.get("state") or {}
    name: Literal["waiting", "running", "terminated", "unknown"] = "unknown"
    detail: Obj = {}
    for candidate in ("waiting", "running", "terminated"):
        if state.get(candidate) is not None:
            name = candidate
            detail = state[candidate] or {}
            break
    last = (cs.get("lastState") or {}).get("terminated") or {}
    return ContainerState(
        name=str(cs.get("name")),
        image=cs.get("image") or image,
        init=init,
        ready=bool(cs.get("ready")),
        restart_count=int(cs.get("restartCount") or 0),
        state=name,
        reason=detail.get("reason"),
        message=_trunc(detail.get("message")),
        exit_code=detail.get("exitCode"),
        started_at=parse_time(detail.get("startedAt")),
        last_termination_reason=last.get("reason"),
        last_exit_code=last.get("exitCode"),
        last_finished_at=parse_time(last.get("finishedAt")),
    )


def event_summary(ev: Obj) -> KubeEventSummary:
    """An events.k8s.io/v1 Event, condensed (also accepts core/v1 field names)."""
    regarding = ev.get("regarding") or ev.get("involvedObject") or {}
    series = ev.get("series") or {}
    count = int(series.get("count") or ev.get("deprecatedCount") or ev.get("count") or 1)
    first = parse_time(ev.get("deprecatedFirstTimestamp")) or parse_time(ev.get("eventTime"))
    last = (
        parse_time(series.get("lastObservedTime"))
        or parse_time(ev.get("deprecatedLastTimestamp"))
        or parse_time(ev.get("eventTime"))
        or parse_time((ev.get("metadata") or {}).get("creationTimestamp"))
    )
    ev_type = "Warning" if ev.get("type") == "Warning" else "Normal"
    return KubeEventSummary(
        type=ev_type,
        reason=str(ev.get("reason") or "Unknown"),
        message=_trunc(ev.get("note") or ev.get("message") or "") or "",
        count=max(count, 1),
        first_seen=first,
        last_seen=last,
        reporting_controller=ev.get("reportingController") or None,
        regarding=ResourceRef(
            kind=str(regarding.get("kind") or "Unknown"),
            name=str(regarding.get("name") or "unknown"),
            namespace=regarding.get("namespace") or None,
            api_version=regarding.get("apiVersion") or None,
            uid=regarding.get("uid") or None,
        )
        if regarding.get("name")
        else None,
    )


def _phase(obj: Obj) -> str | None:  # noqa: PLR0911 - one return per kind reads best
    kind = obj.get("kind")
    status = obj.get("status") or {}
    if kind == "Pod":
        return status.get("phase")
    if kind == "Node":
        ready = conditions(obj).get("Ready")
        if ready is None:
            return "Unknown"
        return {"True": "Ready", "False": "NotReady"}.get(str(ready.get("status")), "Unknown")
    if kind == "Job":
        conds = conditions(obj)
        if conds.get("Complete", {}).get("status") == "True":
            return "Complete"
        if conds.get("Failed", {}).get("status") == "True":
            return "Failed"
        return "Running"
    return None


def _replicas(obj: Obj) -> ReplicaCounts | None:
    kind = obj.get("kind")
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    if kind in {"Deployment", "ReplicaSet", "StatefulSet"}:
        return ReplicaCounts(
            desired=int(spec.get("replicas", 1) or 0),
            updated=status.get("updatedReplicas"),
            ready=status.get("readyReplicas"),
            available=status.get("availableReplicas"),
            unavailable=status.get("unavailableReplicas"),
        )
    if kind == "DaemonSet":
        return ReplicaCounts(
            desired=int(status.get("desiredNumberScheduled") or 0),
            updated=status.get("updatedNumberScheduled"),
            ready=status.get("numberReady"),
            available=status.get("numberAvailable"),
            unavailable=status.get("numberUnavailable"),
        )
    return None


def owner(obj: Obj) -> OwnerRef | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return OwnerRef(kind=str(ref.get("kind")), name=str(ref.get("name")), uid=ref.get("uid"))
    return None


def summarize(resource: Resource, change: ChangeType, obj: Obj) -> ClusterEvent:
    """The small, normalized `cluster.event` payload for one object change."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conds = tuple(
        ConditionSummary(
            type=str(c.get("type")),
            status=c.get("status") if c.get("status") in {"True", "False", "Unknown"} else "Unknown",
            reason=c.get("reason") or None,
            message=_trunc(c.get("message")),
            last_transition_time=parse_time(c.get("lastTransitionTime")),
        )
        for c in (status.get("conditions") or [])[:32]
        if isinstance(c, dict) and c.get("type")
    )
    return ClusterEvent(
        change=change,
        kind=resource.kind,
        api_version=resource.api_version,
        namespace=meta.get("namespace") or None,
        name=str(meta.get("name")),
        uid=str(meta.get("uid") or "unknown"),
        resource_version=resource_version(obj) or "0",
        generation=meta.get("generation"),
        observed_generation=status.get("observedGeneration"),
        labels=dict(meta.get("labels") or {}),
        owner=owner(obj),
        phase=_phase(obj),
        conditions=conds,
        replicas=_replicas(obj),
        node_name=(obj.get("spec") or {}).get("nodeName") if resource.kind == "Pod" else None,
        containers=container_states(obj) if resource.kind == "Pod" else (),
        kube_event=event_summary(obj) if resource.kind == "Event" else None,
        deleted_at=parse_time(meta.get("deletionTimestamp")),
    )


def meaningful(before: ClusterEvent | None, after: ClusterEvent) -> bool:
    """Whether a MODIFIED is worth publishing: something but the resourceVersion changed (not a heartbeat)."""
    if before is None:
        return True
    return before.model_copy(update={"resource_version": "0"}) != after.model_copy(update={"resource_version": "0"})
