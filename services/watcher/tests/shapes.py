"""Object status shapes as a kubelet, scheduler and controller-manager report them (trimmed from real objects)."""

from __future__ import annotations

from typing import Any

T0 = "2025-03-14T09:00:00Z"


def pod(
    name: str = "checkout-7d9f8b6c5-x2x4q",
    *,
    ns: str = "payments",
    phase: str = "Running",
    ready: bool = True,
    ready_since: str = T0,
    containers: list[dict[str, Any]] | None = None,
    scheduled: dict[str, Any] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "checkout-7d9f8b6c5"),
    uid: str = "uid-1",
    rv: str = "100",
) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [
        scheduled or {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
    ]
    if phase != "Pending":
        conditions += [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": ready_since,
                **(
                    {}
                    if ready
                    else {"reason": "ContainersNotReady", "message": "containers with unready status: [app]"}
                ),
            },
        ]
    meta: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "uid": uid,
        "resourceVersion": rv,
        "creationTimestamp": T0,
        "managedFields": [{"manager": "kubectl"}],
    }
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True, "uid": "rs-uid"}]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": {
            "nodeName": None if phase == "Pending" else "node-a",
            "containers": [
                {"name": "app", "image": "registry.example.com/payments/checkout:1.42.0", "env": [{"name": "X"}]}
            ],
        },
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": containers or [running()]},
    }


def running(name: str = "app", restarts: int = 0, last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "ready": True,
        "started": True,
        "restartCount": restarts,
        "image": "registry.example.com/payments/checkout:1.42.0",
        "state": {"running": {"startedAt": "2025-03-14T09:20:00Z"}},
        "lastState": last or {},
    }


def waiting(
    reason: str, message: str = "", restarts: int = 0, last: dict[str, Any] | None = None, name: str = "app"
) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "image": "registry.example.com/payments/checkout:1.42.0",
        "state": {"waiting": {"reason": reason, "message": message}},
        "lastState": last or {},
    }


def terminated(reason: str, exit_code: int, finished: str = "2025-03-14T09:26:33Z") -> dict[str, Any]:
    return {
        "terminated": {
            "reason": reason,
            "exitCode": exit_code,
            "startedAt": "2025-03-14T09:26:30Z",
            "finishedAt": finished,
        }
    }


def node(name: str = "node-a", ready: str = "True", since: str = T0, **pressure: str) -> dict[str, Any]:
    conds = [
        {
            "type": "Ready",
            "status": ready,
            "lastTransitionTime": since,
            "lastHeartbeatTime": since,
            "reason": "KubeletReady" if ready == "True" else "KubeletNotReady",
            "message": "PLEG is not healthy: pleg was last seen active 3m0s ago" if ready != "True" else "ok",
        }
    ]
    for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        conds.append({"type": ctype, "status": pressure.get(ctype, "False"), "lastTransitionTime": since})
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "5", "creationTimestamp": T0},
        "status": {"conditions": conds, "images": [{"names": ["x"]}] * 3},
    }


def deployment(
    name: str = "checkout",
    *,
    ns: str = "payments",
    unavailable: int = 0,
    available: str = "True",
    progressing: tuple[str, str] = ("True", "NewReplicaSetAvailable"),
    since: str = T0,
) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": "9", "generation": 2},
        "spec": {"replicas": 3, "template": {"spec": {"containers": []}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 3,
            "availableReplicas": 3 - unavailable,
            "unavailableReplicas": unavailable or None,
            "conditions": [
                {
                    "type": "Available",
                    "status": available,
                    "lastTransitionTime": since,
                    "reason": "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": progressing[0],
                    "reason": progressing[1],
                    "lastTransitionTime": since,
                    "message": f'ReplicaSet "{name}-7d9f8b6c5" has timed out progressing.',
                },
            ],
        },
    }


def replicaset(
    name: str = "checkout-7d9f8b6c5", deployment_name: str = "checkout", ns: str = "payments"
) -> dict[str, Any]:
    return {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": "rs-uid",
            "resourceVersion": "7",
            "ownerReferences": [{"kind": "Deployment", "name": deployment_name, "controller": True}],
        },
        "spec": {"replicas": 3},
        "status": {"replicas": 3},
    }


def job(name: str = "migrate", *, ns: str = "payments", failed: bool = True) -> dict[str, Any]:
    conds = (
        [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": T0,
            }
        ]
        if failed
        else [{"type": "Complete", "status": "True", "lastTransitionTime": T0}]
    )
    return {
        "kind": "Job",
        "apiVersion": "batch/v1",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": "3"},
        "spec": {"backoffLimit": 6},
        "status": {"failed": 7, "conditions": conds},
    }


def k8s_event(
    name: str, regarding_pod: str, reason: str = "BackOff", ns: str = "payments", when: str = "2025-03-14T09:26:48Z"
) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": "11",
            "creationTimestamp": when,
        },
        "type": "Warning",
        "reason": reason,
        "note": f"Back-off restarting failed container app in pod {regarding_pod}",
        "reportingController": "kubelet",
        "eventTime": None,
        "series": {"count": 14, "lastObservedTime": when},
        "regarding": {"kind": "Pod", "name": regarding_pod, "namespace": ns, "apiVersion": "v1"},
    }


def statefulset(name: str = "ledger", *, ns: str = "payments", replicas: int = 3, ready: int = 3) -> dict[str, Any]:
    """A StatefulSet as the controller-manager reports it (no conditions: StatefulSets carry none)."""
    return {
        "kind": "StatefulSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": "21", "generation": 1},
        "spec": {"replicas": replicas, "serviceName": name, "template": {"spec": {"containers": []}}},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready or None,  # the controller omits zero counts
            "availableReplicas": ready or None,
            "currentReplicas": replicas,
            "updatedReplicas": replicas,
            "currentRevision": f"{name}-5b8f7d6c9",
            "updateRevision": f"{name}-5b8f7d6c9",
            "collisionCount": 0,
        },
    }


def daemonset(
    name: str = "node-exporter", *, ns: str = "monitoring", desired: int = 3, ready: int = 3
) -> dict[str, Any]:
    return {
        "kind": "DaemonSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": "31", "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"spec": {"containers": []}}},
        "status": {
            "currentNumberScheduled": desired,
            "desiredNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready or None,
            "numberUnavailable": (desired - ready) or None,
            "observedGeneration": 1,
            "updatedNumberScheduled": desired,
        },
    }
