"""The diagnosis planner on plain data: each signature picks the right top cause, a distractor in the same
namespace never ranks first, nothing to go on gives `unknown`, and a revision is detected only when the ranking
changes. No mocks, no I/O: snapshots in, verdicts out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsbus.analyzer.domain.logs import LogSample, mine
from opsbus.analyzer.domain.metrics import Series, following, step_of, steps
from opsbus.analyzer.domain.planning import AlertFact, Snapshot, diagnose, ranking_changed
from opsbus.analyzer.domain.timeline import Entry, FieldDiff
from opsbus.common.events.payloads import (
    ActionKind,
    AlertAnnotations,
    AlertEvidence,
    AlertFired,
    AlertSource,
    ContainerState,
    KubeEventSummary,
    Severity,
    WorkloadRef,
)
from opsbus.common.events.payloads.diagnosis import CauseKind, DiagnosisOutcome, EvidenceKind

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEB = WorkloadRef(kind="Deployment", namespace="shop", name="web")


def alert(
    alertname: str,
    *,
    reason: str | None = None,
    last: str | None = None,
    event: str | None = None,
    pod: str = "web-7d9f-a1",
    node: str = "node-1",
    workload: WorkloadRef | None = WEB,
    at: datetime = T0,
    fingerprint: str = "0123456789abcdef",
) -> AlertFired:
    labels = {"alertname": alertname, "namespace": "shop", "pod": pod, "node": node}
    state = "waiting" if reason else "running"
    return AlertFired(
        fingerprint=fingerprint,
        alertname=alertname,
        severity=Severity.CRITICAL,
        labels=labels,
        annotations=AlertAnnotations(summary=f"{alertname} on {pod}"),
        starts_at=at,
        source=AlertSource.WATCHER,
        workload=workload,
        evidence=AlertEvidence(
            containers=(ContainerState(name="app", state=state, reason=reason, last_termination_reason=last),),
            events=(KubeEventSummary(type="Warning", reason=event, message=f"{event} happened"),) if event else (),
        ),
    )


def change(
    eid: str,
    ago: float,
    kinds: set[str],
    *,
    kind: str = "Deployment",
    name: str = "web",
    workload: str | None = "web",
    diff: tuple[FieldDiff, ...] = (),
    summary: str | None = None,
    namespace: str | None = "shop",
) -> Entry:
    return Entry(
        event_id=eid,
        at=T0 - timedelta(seconds=ago),
        source="change",
        namespace=namespace,
        object_kind=kind,
        object_name=name,
        workload_kind="Deployment" if workload else None,
        workload_name=workload,
        kinds=frozenset(kinds),
        summary=summary or f"{'/'.join(sorted(kinds))} of {kind}/{name}",
        origin="observed",
        diff=diff,
    )


def snapshot(alerts: list[AlertFired], timeline: list[Entry], **kw: object) -> Snapshot:
    facts = tuple(AlertFact(f"alert-{i}", a) for i, a in enumerate(alerts))
    return Snapshot(incident_id="alert-0", alerts=facts, timeline=tuple(timeline), now=T0 + timedelta(seconds=1), **kw)  # type: ignore[arg-type]


IMAGE = FieldDiff("spec.template.spec.containers[app].image", "shop/web:1.41", "shop/web:1.42")
DISTRACTOR = change("other", 5, {"image"}, name="cart", workload="cart", summary="image cart 3 -> 4")


def test_image_pull_failure_after_image_change_is_the_rollout() -> None:
    v = diagnose(
        snapshot(
            [alert("KubePodImagePullFailing", reason="ImagePullBackOff", event="Failed")],
            [change("img", 40, {"image"}, diff=(IMAGE,)), DISTRACTOR],
        )
    )
    top = v.causes[0]
    assert v.outcome is DiagnosisOutcome.EXPLAINED
    assert (top.kind, top.suggested_action) == (CauseKind.ROLLOUT, ActionKind.ROLLBACK)
    assert top.evidence[0].kind is EvidenceKind.CHANGE and top.evidence[0].ref == "img"
    assert {e.ref for e in top.evidence} >= {"ImagePullBackOff", "Failed"}
    assert top.scores.signature == 1.0 and top.confidence > 0.85
    assert "40 s before the first alert" in top.summary
    assert all(c.target is None or c.target.name != "cart" for c in v.causes)


def test_oom_after_memory_limit_cut_suggests_raising_the_limit() -> None:
    cut = FieldDiff("spec.template.spec.containers[app].resources.limits.memory", "512Mi", "128Mi")
    v = diagnose(
        snapshot(
            [alert("KubeContainerOOMKilled", reason="CrashLoopBackOff", last="OOMKilled")],
            [change("image-old", 3000, {"image"}, diff=(IMAGE,)), change("cut", 90, {"resources"}, diff=(cut,))],
        )
    )
    top = v.causes[0]
    assert (top.kind, top.suggested_action, top.evidence[0].ref) == (
        CauseKind.RESOURCE_CHANGE,
        ActionKind.RAISE_MEMORY_LIMIT,
        "cut",
    )
    assert "memory limit was cut" in top.summary


def test_pending_after_request_raise() -> None:
    raise_ = FieldDiff("spec.template.spec.containers[app].resources.requests.cpu", "250m", "64")
    v = diagnose(
        snapshot(
            [alert("KubePodNotScheduled", event="FailedScheduling")],
            [change("scale", 20, {"replicas"}), change("req", 60, {"resources"}, diff=(raise_,))],
        )
    )
    assert (v.causes[0].evidence[0].ref, v.causes[0].kind) == ("req", CauseKind.RESOURCE_CHANGE)


def test_crash_after_a_configmap_the_workload_reads_changed() -> None:
    cm = change("cm", 30, {"config"}, kind="ConfigMap", name="web-settings", workload=None)
    unread = change("cm2", 10, {"config"}, kind="ConfigMap", name="cart-settings", workload=None)
    v = diagnose(
        snapshot(
            [alert("KubePodCrashLooping", reason="CrashLoopBackOff", last="Error")],
            [cm, unread],
            config_refs=frozenset({("ConfigMap", "web-settings")}),
        )
    )
    assert [c.evidence[0].ref for c in v.causes] == ["cm"]
    assert v.causes[0].kind is CauseKind.CONFIG_CHANGE
    assert v.causes[0].target is not None and v.causes[0].target.name == "web-settings"


def test_configmap_matched_by_name_when_the_workload_cannot_be_read() -> None:
    cm = change("cm", 30, {"config"}, kind="ConfigMap", name="web-config", workload=None)
    v = diagnose(snapshot([alert("KubePodCrashLooping", reason="CrashLoopBackOff")], [cm]))
    assert v.causes[0].evidence[0].ref == "cm" and v.causes[0].scores.scope == 0.6


def test_pods_down_with_their_node() -> None:
    alerts = [
        alert("KubeDeploymentReplicasMismatch", pod="web-a", node="node-3"),
        alert("KubeDeploymentReplicasMismatch", pod="web-b", node="node-3", fingerprint="0123456789abcdee"),
    ]
    node = change("nr", 50, {"node_condition"}, kind="Node", name="node-3", workload=None, namespace=None)
    other = change("nr2", 50, {"node_condition"}, kind="Node", name="node-9", workload=None, namespace=None)
    v = diagnose(snapshot(alerts, [node, other, DISTRACTOR]))
    assert (v.causes[0].kind, v.causes[0].suggested_action) == (CauseKind.NODE, ActionKind.CORDON_NODE)
    assert [c.evidence[0].ref for c in v.causes] == ["nr"]


def test_a_workload_alert_names_no_pod_yet_its_unready_pods_share_the_node() -> None:
    """KubeDeploymentReplicasMismatch carries no pod or node label: the pods read when it arrived place it."""
    mismatch = alert("KubeDeploymentReplicasMismatch", pod="", node="")
    mismatch = mismatch.model_copy(update={"labels": {"alertname": mismatch.alertname, "namespace": "shop"}})
    node = change("nr", 30, {"node_condition"}, kind="Node", name="node-3", workload=None, namespace=None)
    other = change("nr2", 30, {"node_condition"}, kind="Node", name="node-9", workload=None, namespace=None)
    placed = (AlertFact("alert-0", mismatch, {"web-a": "node-3", "web-b": "node-3"}),)
    v = diagnose(Snapshot(incident_id="alert-0", alerts=placed, timeline=(node, other, DISTRACTOR), now=T0))
    assert (v.causes[0].kind, v.causes[0].suggested_action) == (CauseKind.NODE, ActionKind.CORDON_NODE)
    assert [c.evidence[0].ref for c in v.causes] == ["nr"]
    assert v.causes[0].scores.scope == 1.0
    unplaced = diagnose(snapshot([mismatch], [node, other, DISTRACTOR]))
    assert unplaced.outcome is DiagnosisOutcome.UNKNOWN  # without the pods' nodes no node is blamed


def test_distractor_in_the_same_namespace_never_ranks_first() -> None:
    real = change("real", 120, {"env"}, summary="env DB_HOST changed")
    noise = [
        DISTRACTOR,
        change("n2", 1, {"replicas"}, name="cart", workload="cart"),
        change("n3", 2, {"config"}, kind="ConfigMap", name="cart-settings", workload=None),
    ]
    v = diagnose(snapshot([alert("KubePodCrashLooping", reason="CrashLoopBackOff", last="Error")], [real, *noise]))
    assert v.causes[0].evidence[0].ref == "real"
    assert "n2" not in {c.evidence[0].ref for c in v.causes}


def test_nothing_to_go_on_is_unknown_with_what_was_checked() -> None:
    v = diagnose(
        snapshot(
            [alert("KubePodCrashLooping", reason="CrashLoopBackOff")],
            [DISTRACTOR, change("old", 7200, {"image"}, diff=(IMAGE,))],
        )
    )
    assert v.outcome is DiagnosisOutcome.UNKNOWN and v.causes == ()
    checked = {c.source: c for c in v.checked}
    assert checked["changes"].count == 1  # the distractor was looked at; the 2 h old change is out of the window
    assert checked["logs"].detail == "no log lines available"


def test_old_unrelated_scaling_of_the_workload_is_not_a_cause() -> None:
    v = diagnose(snapshot([alert("KubePodCrashLooping", reason="CrashLoopBackOff")], [change("s", 1800, {"replicas"})]))
    assert v.outcome is DiagnosisOutcome.UNKNOWN


def test_change_after_the_alert_is_not_a_cause() -> None:
    late = change("late", -120, {"image"}, diff=(IMAGE,))
    v = diagnose(snapshot([alert("KubePodImagePullFailing", reason="ImagePullBackOff")], [late]))
    assert v.outcome is DiagnosisOutcome.UNKNOWN


def test_dependency_outage_visible_only_in_logs() -> None:
    healthy = ("GET /health 200 3ms", "serving on :8080", "GET /cart 200 12ms") * 5
    failing = (*healthy[:3], "dial tcp 10.0.3.7:5432: connection refused to postgres:5432", "fatal: cannot start")
    samples = [
        LogSample("web-a", "app", failing, failing=True),
        LogSample("web-b", "app", failing, failing=True),
        LogSample("web-c", "app", healthy, failing=False),
    ]
    mined = mine(samples)
    assert any(t.dependency == "postgres" for t in mined.novel)
    assert all("GET" not in t.template for t in mined.novel)
    alerts = [
        alert("KubePodCrashLooping", reason="CrashLoopBackOff", pod="web-a"),
        alert("KubePodCrashLooping", reason="CrashLoopBackOff", pod="web-b", fingerprint="0123456789abcdee"),
    ]
    v = diagnose(snapshot(alerts, [DISTRACTOR], logs=mined))
    top = v.causes[0]
    assert top.kind is CauseKind.SHARED_DEPENDENCY and "postgres" in top.summary
    assert top.evidence[0].kind is EvidenceKind.LOG_TEMPLATE and "connection refused" in (top.evidence[0].detail or "")
    # the same outage while postgres itself was just rolled out: the change is named as the dependency's
    pg = change("pg", 30, {"image"}, name="postgres", workload="postgres", summary="image postgres 15 -> 16")
    v2 = diagnose(snapshot(alerts, [pg, DISTRACTOR], logs=mined))
    assert v2.causes[0].kind is CauseKind.SHARED_DEPENDENCY
    assert v2.causes[0].evidence[0].ref == "pg"


def test_rollout_wins_over_its_own_log_line_and_carries_it() -> None:
    samples = [
        LogSample("web-a", "app", ("panic: nil map in handler",), failing=True),
        LogSample("web-c", "app", ("serving on :8080",), failing=False),
    ]
    v = diagnose(
        snapshot(
            [alert("KubePodCrashLooping", reason="CrashLoopBackOff", pod="web-a")],
            [change("img", 40, {"image"}, diff=(IMAGE,))],
            logs=mine(samples),
        )
    )
    assert v.causes[0].kind is CauseKind.ROLLOUT
    assert any(e.kind is EvidenceKind.LOG_TEMPLATE for e in v.causes[0].evidence)
    assert v.causes[1].kind is CauseKind.LOG_SIGNATURE


def test_revision_only_when_the_ranking_changes() -> None:
    crash = [alert("KubePodCrashLooping", reason="CrashLoopBackOff")]
    first = diagnose(snapshot(crash, [change("env", 200, {"env"})]))
    same = diagnose(snapshot(crash, [change("env", 200, {"env"}), DISTRACTOR]))
    assert not ranking_changed(first.causes, same.causes)
    later = diagnose(snapshot(crash, [change("env", 200, {"env"}), change("img", 20, {"image"}, diff=(IMAGE,))]))
    assert ranking_changed(first.causes, later.causes)
    assert later.causes[0].evidence[0].ref == "img"


def test_a_log_line_without_a_healthy_baseline_is_not_a_cause() -> None:
    mined = mine([LogSample("web-a", "app", ("fatal: config key db.url missing",), failing=True)])
    v = diagnose(snapshot([alert("KubePodCrashLooping", reason="CrashLoopBackOff", pod="web-a")], [], logs=mined))
    assert v.outcome is DiagnosisOutcome.UNKNOWN
    assert {c.source: c.detail for c in v.checked}["logs"] == "1 lines of failing pods, 0 of healthy ones"


def test_a_configmap_the_watcher_says_the_workload_reads_is_in_scope() -> None:
    """`change.recorded` for a ConfigMap names the workloads reading it (`used_by`): no cluster read needed."""
    from opsbus.analyzer.domain.timeline import from_change  # noqa: PLC0415
    from opsbus.common.events.payloads import (  # noqa: PLC0415
        ChangeKind,
        ChangeOrigin,
        ChangeRecorded,
        FieldChange,
        ResourceRef,
    )

    recorded = ChangeRecorded(
        kinds=(ChangeKind.CONFIG,),
        object=ResourceRef(kind="ConfigMap", name="settings", namespace="shop"),
        used_by=(WEB,),
        diff=(FieldChange(path="data[DB_URL]", before="sha256:" + "1" * 16, after="sha256:" + "2" * 16),),
        summary="ConfigMap settings: DB_URL changed",
        origin=ChangeOrigin.OBSERVED,
        observed_at=T0 - timedelta(seconds=30),
    )
    entry = from_change("cm", recorded)
    assert entry.used_by == frozenset({("Deployment", "web")})
    v = diagnose(snapshot([alert("KubePodCrashLooping", reason="CrashLoopBackOff")], [entry]))
    assert (v.causes[0].kind, v.causes[0].scores.scope) == (CauseKind.CONFIG_CHANGE, 0.9)


# --- metric evidence ---------------------------------------------------------------------------------


def series(values: list[float], *, start: float = -120, every: float = 10, name: str = "error_rate") -> Series:
    points = tuple((T0 + timedelta(seconds=start + i * every), v) for i, v in enumerate(values))
    return Series(name=name, query=f"{name}{{workload='web'}}", points=points, resolution_seconds=every)


def test_a_rise_of_level_is_a_step_at_its_first_high_point() -> None:
    s = step_of(series([0.01, 0.012, 0.01, 0.011, 0.4, 0.42, 0.41, 0.4]))
    assert s is not None
    assert s.at == T0 + timedelta(seconds=-120 + 40)
    assert (round(s.before, 3), round(s.after, 2)) == (0.011, 0.41)


def test_noise_a_fall_or_too_few_points_is_no_step() -> None:
    assert step_of(series([0.01, 0.012, 0.009, 0.011, 0.01, 0.012, 0.01])) is None  # noise
    assert step_of(series([0.5, 0.5, 0.5, 0.01, 0.01, 0.01])) is None  # a fall: recovery, not a fault
    assert step_of(series([0.01, 0.4])) is None
    assert step_of(series([0.0, 0.0, 0.0, 0.0004, 0.0004, 0.0004])) is None  # near zero: below min_rise


def test_a_step_follows_a_change_only_shortly_after_it() -> None:
    found = steps([series([0.01] * 4 + [0.4] * 4)])  # step at T0-80s
    assert following(found, T0 - timedelta(seconds=90), timedelta(minutes=5)) is not None
    assert following(found, T0 - timedelta(seconds=500), timedelta(minutes=5)) is None  # long before
    assert following(found, T0 - timedelta(seconds=40), timedelta(minutes=5)) is None  # after the step


def _crash_snapshot(metrics: tuple[Series, ...] | None) -> object:
    crash = alert("KubePodCrashLooping", reason="CrashLoopBackOff", last="Error")
    image = change("img", 90, {"image"}, diff=(IMAGE,))
    config = change("cfg", 30, {"config"}, kind="ConfigMap", name="web-settings", workload=None)
    return snapshot(
        [crash], [image, config, DISTRACTOR], config_refs=frozenset({("ConfigMap", "web-settings")}), metrics=metrics
    )


def test_the_change_a_metric_step_follows_ranks_first_with_the_metric_as_evidence() -> None:
    without = diagnose(_crash_snapshot(None))  # type: ignore[arg-type]
    assert without.causes[0].kind is CauseKind.CONFIG_CHANGE  # the closer change wins on proximity alone
    assert next(c for c in without.checked if c.source == "metrics").detail == "no Prometheus configured"

    rose = (series([0.01] * 4 + [0.4] * 6, start=-110),)  # the error rate rose 10 s after the image change
    v = diagnose(_crash_snapshot(rose))  # type: ignore[arg-type]
    top = v.causes[0]
    assert top.kind is CauseKind.ROLLOUT
    metric = next(e for e in top.evidence if e.kind is EvidenceKind.METRIC)
    assert metric.ref.startswith("error_rate") and "0.01 -> 0.4" in (metric.detail or "")
    assert "error_rate rose" in top.summary
    assert top.scores.signature > next(c for c in without.causes if c.kind is CauseKind.ROLLOUT).scores.signature
    assert all(e.kind is not EvidenceKind.METRIC for c in v.causes[1:] for e in c.evidence)
    assert "error_rate rose" in (next(c for c in v.checked if c.source == "metrics").detail or "")
