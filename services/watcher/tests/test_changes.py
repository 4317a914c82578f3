"""The change timeline on plain data: which cache changes become `change.recorded`, their diffs, digests only
for ConfigMaps/Secrets (the value is in no event and not even in the cache), deterministic ids, and the engine
publishing nothing for the first list."""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.events import Envelope
from opsbus.common.events.payloads.change import ChangeKind, ChangeOrigin, ChangeRecorded
from opsbus.common.events.payloads.cluster import ChangeType
from opsbus.watcher import executing
from opsbus.watcher.domain.cache import Cache, Change
from opsbus.watcher.domain.changes import Observed, change_id, record
from opsbus.watcher.domain.objects import CONFIGMAP, DEPLOYMENT, HPA, NODE, REPLICASET, SECRET, Resource, strip
from opsbus.watcher.executing import Engine
from opsbus.watcher.settings import WatcherOptions

NOW = datetime(2025, 3, 14, 9, 27, 0, tzinfo=UTC)
SECRET_VALUE = "s3cr3t-hunter2-do-not-leak"


def _container(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "app",
        "image": "registry.example.com/web:1.0",
        "command": ["web"],
        "args": ["--port", "8080"],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "web-config"}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
    }
    return {**base, **over}


def deployment(rv: str = "1", *, replicas: int = 3, ready: int = 3, **container: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web", "resourceVersion": rv, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [_container(**container)]},
            },
        },
        "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": ready},
    }


def secret(rv: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "db",
            "namespace": "shop",
            "uid": "uid-db",
            "resourceVersion": rv,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": f'{{"data":"{SECRET_VALUE}"}}'},
        },
        "type": "Opaque",
        "data": encoded,
    }


def configmap(rv: str, **data: str) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "web-config", "namespace": "shop", "uid": "uid-cm", "resourceVersion": rv},
        "data": data,
    }


def node(rv: str, *, ready: str = "True", heartbeat: str = "2025-03-14T09:00:00Z", taints: Any = None) -> Any:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": "node-a", "uid": "uid-node", "resourceVersion": rv},
        "spec": {"taints": taints or []},
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat},
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat},
            ]
        },
    }


def hpa(rv: str, max_replicas: int) -> dict[str, Any]:
    return {
        "kind": "HorizontalPodAutoscaler",
        "apiVersion": "autoscaling/v2",
        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-hpa", "resourceVersion": rv},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": max_replicas,
        },
        "status": {"currentReplicas": 3, "desiredReplicas": 3},
    }


def _update(resource: Resource, before: dict[str, Any], after: dict[str, Any], cache: Cache | None = None) -> Any:
    cache = cache or Cache()
    cache.apply(resource.kind, "ADDED", strip(before))
    change = cache.apply(resource.kind, "MODIFIED", strip(after))
    assert change is not None
    return record(Observed(resource, change, NOW, cache)), change


def _paths(payload: ChangeRecorded) -> dict[str, tuple[str | None, str | None]]:
    return {d.path: (d.before, d.after) for d in payload.diff}


# --- workloads ----------------------------------------------------------------------------------------------


def test_an_image_change_is_recorded_with_its_before_and_after() -> None:
    payload, _ = _update(DEPLOYMENT, deployment("1"), deployment("2", image="registry.example.com/web:2.0"))
    assert payload.kinds == (ChangeKind.IMAGE,)
    assert _paths(payload) == {
        "spec.template.spec.containers[app].image": ("registry.example.com/web:1.0", "registry.example.com/web:2.0")
    }
    assert str(payload.workload) == "Deployment/shop/web"
    assert payload.origin == ChangeOrigin.OBSERVED
    assert payload.observed_at == NOW
    assert payload.resource_version == "2"
    assert "image registry.example.com/web:1.0 -> registry.example.com/web:2.0" in payload.summary


def test_env_command_and_resources_in_one_update_are_one_change_of_three_kinds() -> None:
    after = deployment(
        "2",
        args=["--port", "9090"],
        env=[{"name": "LOG_LEVEL", "value": "debug"}, {"name": "NEW", "value": "1"}],
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}},
    )
    payload, _ = _update(DEPLOYMENT, deployment("1"), after)
    assert set(payload.kinds) == {ChangeKind.COMMAND, ChangeKind.ENV, ChangeKind.RESOURCES}
    paths = _paths(payload)
    prefix = "spec.template.spec.containers[app]"
    assert paths[f"{prefix}.env[LOG_LEVEL]"] == ("info", "debug")
    assert paths[f"{prefix}.env[NEW]"] == (None, "1")
    assert paths[f"{prefix}.env[DB_PASSWORD]"] == ("<secretKeyRef db/password>", None)  # a reference, not a value
    assert paths[f"{prefix}.resources.limits.memory"] == ("256Mi", "128Mi")
    assert paths[f"{prefix}.command"] == ('["web","--port","8080"]', '["web","--port","9090"]')


def test_status_only_updates_are_not_changes() -> None:
    payload, _ = _update(DEPLOYMENT, deployment("1", ready=3), deployment("2", ready=1))
    assert payload is None


def test_replicas_restart_annotation_and_probe_edits_are_recorded() -> None:
    payload, _ = _update(DEPLOYMENT, deployment("1"), deployment("2", replicas=5))
    assert payload.kinds == (ChangeKind.REPLICAS,)
    assert _paths(payload) == {"spec.replicas": ("3", "5")}

    restarted = deployment("3")
    restarted["spec"]["template"]["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2025-03-14"}
    payload, _ = _update(DEPLOYMENT, deployment("1"), restarted)
    assert payload.kinds == (ChangeKind.TEMPLATE,)
    assert "spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]" in _paths(payload)

    payload, _ = _update(DEPLOYMENT, deployment("1"), deployment("4", readinessProbe={"tcpSocket": {"port": 1}}))
    assert payload.kinds == (ChangeKind.TEMPLATE,)
    before, after = _paths(payload)["spec.template (other fields)"]
    assert before and after and before.startswith("sha256:") and before != after


def test_replicasets_and_first_sight_are_handled() -> None:
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "shop", "uid": "u", "resourceVersion": "1"}}
    change = Change("ReplicaSet", ChangeType.MODIFIED, "shop/web-1", rs, rs)
    assert record(Observed(REPLICASET, change, NOW)) is None
    cache = Cache()
    added = cache.apply("Deployment", "ADDED", strip(deployment("1")))
    assert added is not None
    payload = record(Observed(DEPLOYMENT, added, NOW, cache))
    assert payload is not None
    assert payload.kinds == (ChangeKind.CREATED,)
    assert _paths(payload)["spec.template.spec.containers[app]"] == (None, "registry.example.com/web:1.0")


# --- config objects: digests only ---------------------------------------------------------------------------


def test_a_secret_change_carries_digests_and_the_value_is_nowhere() -> None:
    cache = Cache()
    cache.apply("Deployment", "ADDED", strip(deployment("1")))
    payload, change = _update(SECRET, secret("1", password="old-one"), secret("2", password=SECRET_VALUE), cache)
    assert payload.kinds == (ChangeKind.CONFIG,)
    before, after = _paths(payload)["data[password]"]
    assert before and after and before.startswith("sha256:") and after.startswith("sha256:") and before != after
    assert [str(w) for w in payload.used_by] == ["Deployment/shop/web"]  # via its secretKeyRef
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    event = Envelope.build(payload, service="watcher", cluster="prod", obj=payload.object.as_object_ref())
    for leak in (SECRET_VALUE, encoded):
        assert leak not in event.to_json().decode()
        assert leak not in repr(cache.get("Secret", "shop/db"))  # the cache keeps digests only
        assert leak not in repr(change)


def test_configmap_keys_added_removed_and_changed() -> None:
    cache = Cache()
    cache.apply("Deployment", "ADDED", strip(deployment("1")))
    payload, _ = _update(CONFIGMAP, configmap("1", a="1", b="2"), configmap("2", b="3", c="4"), cache)
    paths = _paths(payload)
    assert set(paths) == {"data[a]", "data[b]", "data[c]"}
    assert paths["data[a]"][1] is None and paths["data[c]"][0] is None
    assert [str(w) for w in payload.used_by] == ["Deployment/shop/web"]  # via envFrom
    assert "data[b] changed" in payload.summary
    unchanged, _ = _update(CONFIGMAP, configmap("1", a="1"), {**configmap("2", a="1"), "metadata": {
        **configmap("2")["metadata"], "labels": {"x": "y"}}})  # fmt: skip
    assert unchanged is None


def test_config_objects_created_and_deleted_are_recorded_with_digests_only() -> None:
    """A ConfigMap or Secret's creation names it in `object`, never in the diff (digests only: the model refuses
    a name there, and the refused payload used to break the watch of every later ConfigMap/Secret event)."""
    for resource, obj in ((CONFIGMAP, configmap("1", mode="fast")), (SECRET, secret("1", token=SECRET_VALUE))):
        cache = Cache()
        added = cache.apply(resource.kind, "ADDED", strip(obj))
        assert added is not None and added.type is ChangeType.ADDED
        created = record(Observed(resource, added, NOW, cache))
        assert created is not None and created.kinds == (ChangeKind.CREATED,)
        key = "data[mode]" if resource is CONFIGMAP else "data[token]"
        assert [(d.path, d.before) for d in created.diff] == [("metadata", None), (key, None)]
        assert created.diff[0].after is None and (created.diff[1].after or "").startswith("sha256:")
        assert created.summary == f"{resource.kind} shop/{obj['metadata']['name']}: created; {key} added"
        deleted_change = cache.apply(resource.kind, "DELETED", strip(obj))
        assert deleted_change is not None
        deleted = record(Observed(resource, deleted_change, NOW, cache))
        assert deleted is not None and deleted.kinds == (ChangeKind.DELETED,)
        assert [(d.path, d.before, d.after) for d in deleted.diff] == [("metadata", None, None)]
        assert deleted.summary == f"{resource.kind} shop/{obj['metadata']['name']}: deleted"
    empty = Cache().apply("ConfigMap", "ADDED", strip(configmap("1")))
    assert empty is not None
    payload = record(Observed(CONFIGMAP, empty, NOW))
    assert payload is not None and payload.kinds == (ChangeKind.CREATED,) and payload.summary.endswith(": created")


def test_other_kinds_keep_their_name_in_the_created_and_deleted_entries() -> None:
    cache = Cache()
    added = cache.apply("HorizontalPodAutoscaler", "ADDED", strip(hpa("1", 4)))
    assert added is not None
    created = record(Observed(HPA, added, NOW))
    assert created is not None and created.kinds == (ChangeKind.CREATED,)
    assert created.diff[0].after == "shop/web" and created.summary.startswith(
        "HorizontalPodAutoscaler shop/web: created"
    )
    gone = cache.apply("HorizontalPodAutoscaler", "DELETED", strip(hpa("1", 4)))
    assert gone is not None
    deleted = record(Observed(HPA, gone, NOW))
    assert deleted is not None and deleted.diff[0].before == "shop/web" and deleted.summary.endswith(": deleted")


# --- HPAs and nodes -----------------------------------------------------------------------------------------


def test_an_hpa_change_names_its_scale_target() -> None:
    payload, _ = _update(HPA, hpa("1", 10), hpa("2", 4))
    assert payload.kinds == (ChangeKind.HPA,)
    assert _paths(payload) == {"spec.maxReplicas": ("10", "4")}
    assert str(payload.workload) == "Deployment/shop/web"
    status_only = hpa("3", 10)
    status_only["status"]["desiredReplicas"] = 7
    assert _update(HPA, hpa("1", 10), status_only)[0] is None


def test_node_heartbeats_are_not_changes_but_conditions_and_taints_are() -> None:
    assert _update(NODE, node("1"), node("2", heartbeat="2025-03-14T09:00:40Z"))[0] is None
    payload, _ = _update(NODE, node("1"), node("2", ready="Unknown"))
    assert payload.kinds == (ChangeKind.NODE_CONDITION,)
    assert _paths(payload) == {"status.conditions[Ready]": ("True", "Unknown")}
    assert payload.object.namespace is None
    taint = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
    payload, _ = _update(NODE, node("1"), node("3", taints=taint))
    assert payload.kinds == (ChangeKind.NODE_TAINT,)
    assert _paths(payload) == {"spec.taints[node.kubernetes.io/unreachable:NoExecute]": (None, "")}
    assert "added" in payload.summary
    event = Envelope.build(payload, service="watcher", cluster="prod", obj=payload.object.as_object_ref())
    assert event.nats_subject() == "change.recorded.prod._"


def test_ids_are_the_same_for_the_same_update_and_differ_between_updates() -> None:
    _, first = _update(DEPLOYMENT, deployment("1"), deployment("2", image="x:2"))
    _, again = _update(DEPLOYMENT, deployment("1"), deployment("2", image="x:2"))
    _, later = _update(DEPLOYMENT, deployment("2", image="x:2"), deployment("3", image="x:3"))
    assert change_id("prod", first) == change_id("prod", again)
    assert change_id("prod", first) != change_id("prod", later)
    assert change_id("prod", first) != change_id("staging", first)


# --- the engine ---------------------------------------------------------------------------------------------


class Sent:
    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def send(self, event: Envelope) -> asyncio.Future[Any]:
        self.events.append(event)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def changes(self) -> list[Envelope]:
        return [e for e in self.events if e.family == "change"]


async def test_the_engine_records_real_changes_only_not_the_first_list() -> None:
    sent, registry = Sent(), CollectorRegistry()
    engine = Engine(cluster="prod", options=WatcherOptions(), sender=sent, logs=None, registry=registry, clock=_now)
    for resource, obj in ((DEPLOYMENT, deployment("1")), (SECRET, secret("1", password="a")), (NODE, node("1"))):
        for change in engine.cache.replace(resource.kind, {_key(obj): strip(obj)}):
            await engine.on_change(resource, change, True)  # the first list
    assert sent.changes() == []
    assert not [e for e in sent.events if e.data.get("kind") in {"Secret", "ConfigMap"}]  # no cluster.event either

    updated = copy.deepcopy(deployment("2", image="registry.example.com/web:2.0"))
    modified = engine.cache.apply("Deployment", "MODIFIED", strip(updated))
    assert modified is not None
    await engine.on_change(DEPLOYMENT, modified, False)
    await engine.on_change(DEPLOYMENT, modified, False)  # the same update seen again: same id, stored once
    recorded = sent.changes()
    assert len({e.id for e in recorded}) == 1
    assert recorded[0].nats_subject() == "change.recorded.prod.shop"
    assert recorded[0].subject == "Deployment/shop/web"
    assert recorded[0].payload_as(ChangeRecorded).kinds == (ChangeKind.IMAGE,)


async def test_the_engine_records_a_config_object_created_while_watching() -> None:
    sent = Sent()
    engine = Engine(cluster="prod", options=WatcherOptions(), sender=sent, logs=None, registry=CollectorRegistry())
    for resource, obj in ((CONFIGMAP, configmap("5", mode="fast")), (SECRET, secret("6", token="t"))):
        added = engine.cache.apply(resource.kind, "ADDED", strip(obj))
        assert added is not None
        await engine.on_change(resource, added, False)  # raised before: the informer dropped its watch
    recorded = [e.payload_as(ChangeRecorded) for e in sent.changes()]
    assert [(c.object.kind, c.kinds) for c in recorded] == [
        ("ConfigMap", (ChangeKind.CREATED,)),
        ("Secret", (ChangeKind.CREATED,)),
    ]


async def test_a_change_the_model_refuses_is_logged_and_the_next_one_still_recorded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sent = Sent()
    engine = Engine(cluster="prod", options=WatcherOptions(), sender=sent, logs=None, registry=CollectorRegistry())

    def refused(observed: Observed) -> ChangeRecorded | None:
        raise ValueError("refused by the model")

    added = engine.cache.apply("ConfigMap", "ADDED", strip(configmap("1", mode="fast")))
    assert added is not None
    with monkeypatch.context() as patched:
        patched.setattr(executing, "record", refused)
        await engine.on_change(CONFIGMAP, added, False)  # does not raise: the informer keeps its watch
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "no change.recorded for ConfigMap shop/web-config: refused by the model"
    ]
    edited = engine.cache.apply("ConfigMap", "MODIFIED", strip(configmap("2", mode="safe")))
    assert edited is not None
    await engine.on_change(CONFIGMAP, edited, False)
    assert [e.payload_as(ChangeRecorded).kinds for e in sent.changes()] == [(ChangeKind.CONFIG,)]


def _now() -> datetime:
    return NOW


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
