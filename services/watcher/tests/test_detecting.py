"""Every detector, table-driven over realistic status shapes; fingerprint stability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.watcher.domain.cache import Cache
from opsbus.watcher.domain.detecting import Context, RestartHistory, detect, fingerprint
from opsbus.watcher.domain.objects import key_of
from opsbus.watcher.domain.rules import Thresholds

from . import shapes as s

NOW = datetime(2025, 3, 14, 9, 27, 0, tzinfo=UTC)


def ctx(*objs: dict[str, Any], **thresholds: Any) -> Context:
    cache = Cache()
    for o in objs:
        cache.apply(o["kind"], "ADDED", o)
    t = Thresholds(**thresholds)
    return Context(
        cluster="prod",
        cache=cache,
        thresholds=t,
        restarts=RestartHistory(window=timedelta(seconds=t.restart_spike_window_seconds)),
    )


CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("healthy pod", s.pod(), []),
    (
        "crashloop",
        s.pod(ready=False, containers=[s.waiting("CrashLoopBackOff", "back-off 40s", 5, s.terminated("Error", 1))]),
        ["KubePodCrashLooping"],
    ),
    (
        "oomkilled crash loop is one OOM alert, not two",
        s.pod(ready=False, containers=[s.waiting("CrashLoopBackOff", "back-off", 3, s.terminated("OOMKilled", 137))]),
        ["KubeContainerOOMKilled"],
    ),
    (
        "recent single OOM kill, running again",
        s.pod(containers=[s.running(restarts=1, last=s.terminated("OOMKilled", 137, "2025-03-14T09:25:00Z"))]),
        ["KubeContainerOOMKilled"],
    ),
    (
        "old OOM kill, running since",
        s.pod(containers=[s.running(restarts=1, last=s.terminated("OOMKilled", 137, "2025-03-14T08:00:00Z"))]),
        [],
    ),
    (
        "ErrImagePull",
        s.pod(ready=False, containers=[s.waiting("ErrImagePull", "rpc error: NotFound")]),
        ["KubePodImagePullFailing"],
    ),
    (
        "ImagePullBackOff",
        s.pod(ready=False, containers=[s.waiting("ImagePullBackOff", 'Back-off pulling image "x"')]),
        ["KubePodImagePullFailing"],
    ),
    (
        "CreateContainerConfigError",
        s.pod(ready=False, containers=[s.waiting("CreateContainerConfigError", 'secret "db" not found')]),
        ["KubeContainerConfigError"],
    ),
    ("ContainerCreating is normal", s.pod(ready=False, containers=[s.waiting("ContainerCreating")]), []),
    (
        "unschedulable beyond bound",
        s.pod(
            phase="Pending",
            containers=[],
            scheduled={
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": s.T0,
                "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            },
        ),
        ["KubePodNotScheduled"],
    ),
    (
        "unschedulable within bound",
        s.pod(
            phase="Pending",
            containers=[],
            scheduled={
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": "2025-03-14T09:26:30Z",
            },
        ),
        [],
    ),
    (
        "being deleted",
        {
            **s.pod(ready=False, containers=[s.waiting("CrashLoopBackOff", "", 5)]),
            "metadata": {"name": "x", "namespace": "payments", "deletionTimestamp": s.T0},
        },
        [],
    ),
    ("node ready", s.node(), []),
    ("node NotReady", s.node(ready="False"), ["KubeNodeNotReady"]),
    ("node Unknown", s.node(ready="Unknown"), ["KubeNodeUnreachable"]),
    (
        "node pressures",
        s.node(MemoryPressure="True", DiskPressure="True", PIDPressure="True"),
        ["KubeNodeMemoryPressure", "KubeNodeDiskPressure", "KubeNodePIDPressure"],
    ),
    ("deployment fine", s.deployment(), []),
    (
        "progress deadline",
        s.deployment(progressing=("False", "ProgressDeadlineExceeded")),
        ["KubeDeploymentRolloutStuck"],
    ),
    ("unavailable beyond bound", s.deployment(unavailable=2, available="False"), ["KubeDeploymentReplicasMismatch"]),
    ("unavailable within bound", s.deployment(unavailable=2, available="False", since="2025-03-14T09:26:00Z"), []),
    ("rolling update keeps Available", s.deployment(unavailable=1), []),
    ("job failed", s.job(), ["KubeJobFailed"]),
    ("job complete", s.job(failed=False), []),
]


@pytest.mark.parametrize(("case", "obj", "expected"), CASES, ids=[c[0] for c in CASES])
def test_detector(case: str, obj: dict[str, Any], expected: list[str]) -> None:
    found = detect(obj["kind"], obj, ctx(s.replicaset(), obj), NOW)
    assert [f.alertname for f in found] == expected


def test_crashloop_alert_carries_labels_workload_and_evidence() -> None:
    p = s.pod(
        ready=False,
        ready_since="2025-03-14T09:16:53Z",
        containers=[s.waiting("CrashLoopBackOff", "back-off 2m40s", 5, s.terminated("Error", 1))],
    )
    (f,) = detect("Pod", p, ctx(s.replicaset(), p), NOW)
    assert dict(f.labels) == {
        "alertname": "KubePodCrashLooping",
        "cluster": "prod",
        "severity": "critical",
        "namespace": "payments",
        "pod": "checkout-7d9f8b6c5-x2x4q",
        "container": "app",
        "node": "node-a",
        "workload": "checkout",
    }
    assert f.workload is not None and str(f.workload) == "Deployment/payments/checkout"
    assert f.since == datetime(2025, 3, 14, 9, 16, 53, tzinfo=UTC)  # the Ready transition: stable across restarts
    assert f.observed == datetime(2025, 3, 14, 9, 26, 33, tzinfo=UTC)  # the latest crash
    assert f.log_containers == ("app",)
    (app,) = f.containers
    assert (app.reason, app.last_termination_reason, app.last_exit_code, app.restart_count) == (
        "CrashLoopBackOff",
        "Error",
        1,
        5,
    )


def test_workload_falls_back_to_replicaset_when_uncached() -> None:
    p = s.pod(ready=False, containers=[s.waiting("CrashLoopBackOff", "", 2)])
    (f,) = detect("Pod", p, ctx(p), NOW)
    assert f.workload is not None and f.workload.kind == "ReplicaSet"


def test_fingerprint_is_stable_across_restarts_and_order() -> None:
    def crash(restarts: int, finished: str) -> str:
        p = s.pod(
            ready=False,
            rv=str(restarts),
            containers=[
                s.waiting("CrashLoopBackOff", f"back-off {restarts}0s", restarts, s.terminated("Error", 1, finished))
            ],
        )
        (f,) = detect("Pod", p, ctx(s.replicaset(), p), NOW)
        return f.fingerprint

    assert crash(3, "2025-03-14T09:20:00Z") == crash(9, "2025-03-14T09:26:00Z")
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1", "b": "2"}) != fingerprint({"a": "1", "b": "3"})
    assert len(fingerprint({"a": "1"})) == 16


def test_restart_rate_spike_fires_only_for_restarts_outside_a_crash_loop() -> None:
    c = ctx(s.replicaset(), restart_spike_count=3, restart_spike_window_seconds=600)
    for i, restarts in enumerate([0, 1, 2, 3]):
        p = s.pod(containers=[s.running(restarts=restarts, last=s.terminated("Error", 1, "2025-03-14T08:00:00Z"))])
        found = detect("Pod", p, c, NOW + timedelta(seconds=30 * i))
    assert [f.alertname for f in found] == ["KubePodRestartRateHigh"]
    # outside the window the count drops again
    p = s.pod(containers=[s.running(restarts=3, last=s.terminated("Error", 1, "2025-03-14T08:00:00Z"))])
    assert detect("Pod", p, c, NOW + timedelta(seconds=2000)) == []


def test_restarts_during_a_crash_loop_do_not_become_a_rate_alert_after_it() -> None:
    c = ctx(s.replicaset(), restart_spike_count=3)
    for i in range(1, 8):
        p = s.pod(ready=False, containers=[s.waiting("CrashLoopBackOff", "", i, s.terminated("Error", 1))])
        assert [f.alertname for f in detect("Pod", p, c, NOW + timedelta(seconds=i))] == ["KubePodCrashLooping"]
    healed = s.pod(containers=[s.running(restarts=8, last=s.terminated("Error", 1))])
    assert detect("Pod", healed, c, NOW + timedelta(seconds=10)) == []


def test_stripping_drops_bulk_but_keeps_what_detectors_read() -> None:
    from opsbus.watcher.domain.objects import strip  # noqa: PLC0415

    p = strip(s.pod())
    assert "managedFields" not in p["metadata"]
    assert p["spec"]["containers"] == [
        {"name": "app", "image": "registry.example.com/payments/checkout:1.42.0", "resources": {}}
    ]
    assert "images" not in strip(s.node())["status"]
    assert key_of(p) == "payments/checkout-7d9f8b6c5-x2x4q"


def _member(
    name: str, owner: tuple[str, str], *, ready: bool, since: str = s.T0, ns: str = "payments", phase: str = "Running"
) -> dict[str, Any]:
    return s.pod(name, ns=ns, ready=ready, ready_since=since, owner=owner, uid=f"uid-{name}", phase=phase)


_STS = ("StatefulSet", "ledger")
_DS = ("DaemonSet", "node-exporter")
WORKLOAD_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[str]]] = [
    ("statefulset all ready", s.statefulset(), [_member("ledger-0", _STS, ready=True)], []),
    (
        "statefulset pod unready beyond bound",
        s.statefulset(ready=2),
        [_member("ledger-0", _STS, ready=True), _member("ledger-1", _STS, ready=False)],
        ["KubeStatefulSetReplicasMismatch"],
    ),
    (
        "statefulset pod unready within bound",
        s.statefulset(ready=2),
        [_member("ledger-1", _STS, ready=False, since="2025-03-14T09:26:00Z")],
        [],
    ),
    ("statefulset status ahead of its pods (none cached unready)", s.statefulset(ready=2), [], []),
    (
        "unready pod of another statefulset",
        s.statefulset(ready=2),
        [_member("cache-0", ("StatefulSet", "cache"), ready=False)],
        [],
    ),
    (
        "unready pod of a same-named statefulset in another namespace",
        s.statefulset(ready=2),
        [_member("ledger-1", _STS, ready=False, ns="staging")],
        [],
    ),
    ("statefulset scaled to zero", s.statefulset(replicas=0, ready=0), [], []),
    (
        "statefulset pod pending, no Ready condition yet: dated from its creation",
        s.statefulset(replicas=1, ready=0),
        [_member("ledger-0", _STS, ready=False, phase="Pending")],
        ["KubeStatefulSetReplicasMismatch"],
    ),
    (
        "daemonset pod unready beyond bound",
        s.daemonset(ready=2),
        [_member("node-exporter-x7k2p", _DS, ready=False, ns="monitoring")],
        ["KubeDaemonSetReplicasMismatch"],
    ),
    ("daemonset all ready", s.daemonset(), [_member("node-exporter-x7k2p", _DS, ready=True, ns="monitoring")], []),
    ("daemonset on no node", s.daemonset(desired=0, ready=0), [], []),
]


@pytest.mark.parametrize(("case", "workload", "pods", "expected"), WORKLOAD_CASES, ids=[c[0] for c in WORKLOAD_CASES])
def test_statefulset_and_daemonset_replicas(
    case: str, workload: dict[str, Any], pods: list[dict[str, Any]], expected: list[str]
) -> None:
    found = detect(workload["kind"], workload, ctx(workload, *pods), NOW)
    assert [f.alertname for f in found] == expected


def test_replicas_mismatch_is_dated_from_the_earliest_unready_pod_and_labelled_by_workload() -> None:
    sts = s.statefulset(ready=1)
    pods = [
        _member("ledger-0", _STS, ready=True),
        _member("ledger-1", _STS, ready=False, since="2025-03-14T09:10:00Z"),
        _member("ledger-2", _STS, ready=False, since="2025-03-14T09:05:00Z"),
    ]
    deleting = _member("ledger-9", _STS, ready=False, since="2025-03-14T08:00:00Z")
    deleting["metadata"]["deletionTimestamp"] = "2025-03-14T09:20:00Z"
    (f,) = detect("StatefulSet", sts, ctx(sts, *pods, deleting), NOW)
    assert dict(f.labels) == {
        "alertname": "KubeStatefulSetReplicasMismatch",
        "cluster": "prod",
        "severity": "warning",
        "namespace": "payments",
        "workload": "ledger",
        "statefulset": "ledger",
    }
    assert f.since == datetime(2025, 3, 14, 9, 5, tzinfo=UTC)  # a pod going away does not date it
    assert f.workload is not None and str(f.workload) == "StatefulSet/payments/ledger"
    assert "2 of 3 pods not ready" in f.summary
    # the same fault seen again (another replica, a restart) has the same identity and start
    (again,) = detect("StatefulSet", sts, ctx(*reversed(pods), sts), NOW + timedelta(minutes=1))
    assert (again.fingerprint, again.since) == (f.fingerprint, f.since)
