"""Detectors: pure functions from one cached object (plus read-only context) to the faults it shows.

Every rule reads only what the apiserver reports in the object's status, so detection latency is the watch's
latency, not a polling or scrape interval. Rules (thresholds in `rules.Thresholds`):

- KubePodCrashLooping (critical, per container): waiting in CrashLoopBackOff with restartCount >=
  `crashloop_min_restarts`, and the last termination was not OOMKilled.
- KubeContainerOOMKilled (critical, per container): last termination OOMKilled and the container not ready
  (crash looping), or the kill less than `oom_recent_seconds` ago. It replaces KubePodCrashLooping for that
  container: one fault, one alert.
- KubePodImagePullFailing (warning, per container): waiting in ErrImagePull / ImagePullBackOff /
  InvalidImageName for `image_pull_seconds`.
- KubeContainerConfigError (warning, per container): waiting in CreateContainerConfigError / CreateContainerError.
- KubePodNotScheduled (warning, per pod): Pending with PodScheduled=False reason Unschedulable for longer
  than `pending_unschedulable_seconds`.
- KubePodRestartRateHigh (warning, per container): >= `restart_spike_count` restarts within
  `restart_spike_window_seconds` counted while not crash looping (restarts during a crash loop are the crash
  alert's; the count starts afresh when it ends), i.e. a container that keeps coming back and dying.
- KubeNodeNotReady / KubeNodeUnreachable (critical): Ready False / Unknown (or missing) for
  `node_not_ready_seconds`.
- KubeNodeMemoryPressure / KubeNodeDiskPressure / KubeNodePIDPressure (warning): that condition True.
- KubeDeploymentRolloutStuck (warning): Progressing=False with reason ProgressDeadlineExceeded.
- KubeDeploymentReplicasMismatch (warning): unavailableReplicas > 0 and Available=False for longer than
  `deployment_unavailable_seconds`.
- KubeStatefulSetReplicasMismatch / KubeDaemonSetReplicasMismatch (warning): fewer pods ready than desired
  (StatefulSet: status.readyReplicas < spec.replicas; DaemonSet: numberReady < desiredNumberScheduled) for
  longer than `replicas_mismatch_seconds`. Neither kind carries a condition to date this from, so the mismatch
  is dated from the workload's own unready pods in the cache: the earliest Ready=False transition (or creation,
  for a pod without a Ready condition yet). While none of its pods is cached unready (pods not created yet,
  or the status ahead of the pod events) nothing fires; a pod that cannot be created shows as a FailedCreate
  Kubernetes Event instead.
- KubeJobFailed (warning): Failed=True (BackoffLimitExceeded, DeadlineExceeded, ...).

Labels follow Alertmanager's vocabulary and identify the fault; the fingerprint hashes them, so it is stable
for as long as the fault lasts and equal across replicas. `since` is read from the object (a condition's
lastTransitionTime, a termination time), never from the local clock, so two replicas derive the same
`startsAt` and therefore the same event id. Never import an I/O library here.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsbus.common.events.payloads.alert import MetricObservation
from opsbus.common.events.payloads.common import ContainerState, ResourceRef, Severity, WorkloadRef
from opsbus.watcher.domain.cache import Cache
from opsbus.watcher.domain.objects import Obj, conditions, container_state, parse_time
from opsbus.watcher.domain.rules import Thresholds

RUNBOOK = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/{slug}"

_IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
_CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
_WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})


@dataclass(frozen=True)
class Finding:
    """One fault an object shows now. `labels` identify it; `fingerprint` hashes them."""

    alertname: str
    severity: Severity
    labels: Mapping[str, str]
    summary: str
    target: ResourceRef
    since: datetime
    description: str | None = None
    runbook: str | None = None
    workload: WorkloadRef | None = None
    observed: datetime | None = None  # latest status transition behind it: detection latency starts here
    containers: tuple[ContainerState, ...] = ()
    log_containers: tuple[str, ...] = ()  # crashed containers whose previous logs are evidence
    metrics: tuple[MetricObservation, ...] = ()  # observed values behind a saturation finding

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def fingerprint(labels: Mapping[str, str]) -> str:
    """sha256 over the sorted label set (Alertmanager's notion of identity), 16 hex digits."""
    material = "\x1f".join(f"{k}\x1e{labels[k]}" for k in sorted(labels))
    return hashlib.sha256(material.encode()).hexdigest()[:16]


# --- context ----------------------------------------------------------------------------------------------


@dataclass
class RestartHistory:
    """Restart counts seen per container over time: the memory behind the restart-rate rule.

    Keys are `<namespace>/<pod>/<container>`; samples are held per pod, so forgetting a deleted pod does not scan
    every container of the cluster (a namespace of 10,000 pods going away would otherwise be quadratic)."""

    window: timedelta
    _pods: dict[str, dict[str, deque[tuple[datetime, int]]]] = field(default_factory=dict)

    def _get(self, key: str) -> deque[tuple[datetime, int]] | None:
        pod, _, container = key.rpartition("/")
        return (self._pods.get(pod) or {}).get(container)

    def record(self, key: str, count: int, now: datetime) -> None:
        pod, _, container = key.rpartition("/")
        samples = self._pods.setdefault(pod, {}).setdefault(container, deque())
        if not samples or samples[-1][1] != count:
            samples.append((now, count))
        while len(samples) > 1 and samples[1][0] <= now - self.window:
            samples.popleft()

    def increase(self, key: str, now: datetime) -> int:
        """Restarts within the window (the oldest sample at or before the window's start is the baseline)."""
        samples = self._get(key)
        if not samples:
            return 0
        return max(samples[-1][1] - samples[0][1], 0)

    def reset(self, key: str, count: int, now: datetime) -> None:
        """Start counting afresh from `count` (restarts already explained by another alert)."""
        pod, _, container = key.rpartition("/")
        self._pods.setdefault(pod, {})[container] = deque([(now, count)])

    def forget_pod(self, pod: str) -> None:
        """Drop every container of the pod `<namespace>/<name>` (it was deleted)."""
        self._pods.pop(pod, None)


@dataclass
class Context:
    """What detectors may read besides the object: the cluster name, the cache (owners), restart history."""

    cluster: str
    cache: Cache
    thresholds: Thresholds
    restarts: RestartHistory


Detector = Callable[[Obj, Context, datetime], list[Finding]]


def _labels(ctx: Context, alertname: str, severity: Severity, **extra: str | None) -> dict[str, str]:
    labels = {"alertname": alertname, "cluster": ctx.cluster, "severity": severity.value}
    labels.update({k: v for k, v in extra.items() if v})
    return labels


def workload_of(obj: Obj, cache: Cache) -> WorkloadRef | None:
    """The controlling workload: a pod's ReplicaSet is followed to its Deployment when the cache knows it."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    if not ns:
        return None
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller") or ref.get("kind") not in _WORKLOAD_KINDS:
            continue
        kind, name = str(ref["kind"]), str(ref["name"])
        if kind in {"ReplicaSet", "Job"}:
            parent = cache.get(kind, f"{ns}/{name}")
            if parent is not None:
                up = workload_of(parent, cache)
                if up is not None:
                    return up
        return WorkloadRef(kind=kind, namespace=ns, name=name)
    return None


def _ref(obj: Obj, kind: str) -> ResourceRef:
    meta = obj.get("metadata") or {}
    return ResourceRef(
        kind=kind,
        name=str(meta.get("name")),
        namespace=meta.get("namespace") or None,
        api_version=obj.get("apiVersion"),
        uid=meta.get("uid") or None,
    )


def _created(obj: Obj) -> datetime | None:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def _older_than(since: datetime | None, now: datetime, seconds: float) -> bool:
    return seconds <= 0 or (since is not None and (now - since).total_seconds() >= seconds)


# --- pods -------------------------------------------------------------------------------------------------


def _quiet(pod: Obj, ctx: Context, now: datetime) -> bool:
    """True when no pod rule can find anything: Running, every container running, no OOM kill on record, no
    restart spike. Read from the raw dict (the rules below build typed states), so the periodic rescan of a large,
    healthy cluster stays cheap. Records restart counts exactly as the rules would (recording twice is a no-op)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    ns, name = (pod.get("metadata") or {}).get("namespace"), (pod.get("metadata") or {}).get("name")
    for raw in status.get("containerStatuses") or []:
        if (raw.get("state") or {}).get("running") is None:
            return False
        if ((raw.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled":
            return False
        key = f"{ns}/{name}/{raw.get('name')}"
        ctx.restarts.record(key, int(raw.get("restartCount") or 0), now)
        if ctx.restarts.increase(key, now) >= ctx.thresholds.restart_spike_count:
            return False
    return True


def detect_pod(pod: Obj, ctx: Context, now: datetime) -> list[Finding]:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") or _quiet(pod, ctx, now):
        return []  # going away (its alerts resolve as "object deleted"), or nothing any rule could find
    t = ctx.thresholds
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    status = pod.get("status") or {}
    conds = conditions(pod)
    ready = conds.get("Ready") or {}
    ready_since = parse_time(ready.get("lastTransitionTime")) if ready.get("status") != "True" else None
    created = _created(pod) or now
    workload = workload_of(pod, ctx.cache)
    target = _ref(pod, "Pod")
    images = {c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
    states = tuple(
        container_state(cs, image=images.get(cs.get("name"))) for cs in status.get("containerStatuses") or []
    )
    findings: list[Finding] = []

    def add(alertname: str, severity: Severity, container: str | None, summary: str, **kw: object) -> None:
        labels = _labels(
            ctx,
            alertname,
            severity,
            namespace=ns,
            pod=name,
            container=container,
            node=(pod.get("spec") or {}).get("nodeName"),
            workload=workload.name if workload else None,
        )
        slug = alertname.lower()
        findings.append(
            Finding(
                alertname=alertname,
                severity=severity,
                labels=labels,
                summary=summary,
                target=target,
                workload=workload,
                containers=states,
                runbook=RUNBOOK.format(slug=slug),
                **kw,  # type: ignore[arg-type]
            )
        )

    for raw in status.get("containerStatuses") or []:
        cs = container_state(raw)
        waiting = cs.reason if cs.state == "waiting" else None
        last_finished = cs.last_finished_at
        key = f"{ns}/{name}/{cs.name}"
        oom_recent = cs.last_termination_reason == "OOMKilled" and (
            not cs.ready or (last_finished is not None and (now - last_finished).total_seconds() < t.oom_recent_seconds)
        )
        crashing = False
        if oom_recent:
            crashing = True
            add(
                "KubeContainerOOMKilled",
                Severity.CRITICAL,
                cs.name,
                f"Container {cs.name} of pod {ns}/{name} was OOMKilled ({cs.restart_count} restarts)",
                description=f"The container exceeded its memory limit and was killed (exit code {cs.last_exit_code}); "
                f"state now {cs.state}{f' ({waiting})' if waiting else ''}.",
                since=ready_since or last_finished or created,
                observed=last_finished,
                log_containers=(cs.name,),
            )
        elif waiting == "CrashLoopBackOff" and cs.restart_count >= t.crashloop_min_restarts:
            crashing = True
            add(
                "KubePodCrashLooping",
                Severity.CRITICAL,
                cs.name,
                f"Pod {ns}/{name} is crash looping ({cs.restart_count} restarts)",
                description=f"Container {cs.name} keeps exiting (last exit code {cs.last_exit_code}, "
                f"reason {cs.last_termination_reason}).",
                since=ready_since or last_finished or created,
                observed=last_finished,
                log_containers=(cs.name,),
            )
        elif waiting in _IMAGE_PULL:
            since = ready_since or created
            if _older_than(since, now, t.image_pull_seconds):
                add(
                    "KubePodImagePullFailing",
                    Severity.WARNING,
                    cs.name,
                    f"Pod {ns}/{name} cannot pull image {cs.image or images.get(cs.name) or '?'}",
                    description=f"{waiting}: {cs.message or ''}".strip(),
                    since=since,
                    observed=since,
                )
        elif waiting in _CONFIG_ERRORS:
            since = ready_since or created
            add(
                "KubeContainerConfigError",
                Severity.WARNING,
                cs.name,
                f"Container {cs.name} of pod {ns}/{name} cannot be created ({waiting})",
                description=cs.message,
                since=since,
                observed=since,
            )
        if crashing:
            ctx.restarts.reset(key, cs.restart_count, now)  # the crash alert covers these restarts
        else:
            ctx.restarts.record(key, cs.restart_count, now)
        if not crashing and ctx.restarts.increase(key, now) >= t.restart_spike_count:
            add(
                "KubePodRestartRateHigh",
                Severity.WARNING,
                cs.name,
                f"Container {cs.name} of pod {ns}/{name} restarted {ctx.restarts.increase(key, now)} times "
                f"in {t.restart_spike_window_seconds:.0f}s",
                description=f"Last termination: {cs.last_termination_reason} (exit code {cs.last_exit_code}).",
                since=last_finished or created,
                observed=last_finished,
                log_containers=(cs.name,),
            )

    scheduled = conds.get("PodScheduled") or {}
    if (
        status.get("phase") == "Pending"
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
    ):
        since = parse_time(scheduled.get("lastTransitionTime")) or created
        if _older_than(since, now, t.pending_unschedulable_seconds):
            add(
                "KubePodNotScheduled",
                Severity.WARNING,
                None,
                f"Pod {ns}/{name} has been unschedulable for {(now - since).total_seconds():.0f}s",
                description=scheduled.get("message"),
                since=since,
                observed=since,
            )
    return findings


# --- nodes ------------------------------------------------------------------------------------------------

_PRESSURE = {
    "MemoryPressure": "KubeNodeMemoryPressure",
    "DiskPressure": "KubeNodeDiskPressure",
    "PIDPressure": "KubeNodePIDPressure",
}


def detect_node(node: Obj, ctx: Context, now: datetime) -> list[Finding]:
    meta = node.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    name = str(meta.get("name"))
    target = _ref(node, "Node")
    conds = conditions(node)
    findings: list[Finding] = []
    ready = conds.get("Ready")
    status = str((ready or {}).get("status") or "Unknown")
    if status != "True":
        since = parse_time((ready or {}).get("lastTransitionTime")) or _created(node) or now
        if _older_than(since, now, ctx.thresholds.node_not_ready_seconds):
            alertname = "KubeNodeNotReady" if status == "False" else "KubeNodeUnreachable"
            findings.append(
                Finding(
                    alertname=alertname,
                    severity=Severity.CRITICAL,
                    labels=_labels(ctx, alertname, Severity.CRITICAL, node=name),
                    summary=f"Node {name} is {'not ready' if status == 'False' else 'unreachable (Ready Unknown)'}",
                    description=f"{(ready or {}).get('reason') or ''}: {(ready or {}).get('message') or ''}".strip(
                        ": "
                    ),
                    target=target,
                    since=since,
                    observed=since,
                    runbook=RUNBOOK.format(slug=alertname.lower()),
                )
            )
    for ctype, alertname in _PRESSURE.items():
        cond = conds.get(ctype)
        if cond is not None and cond.get("status") == "True":
            since = parse_time(cond.get("lastTransitionTime")) or now
            findings.append(
                Finding(
                    alertname=alertname,
                    severity=Severity.WARNING,
                    labels=_labels(ctx, alertname, Severity.WARNING, node=name),
                    summary=f"Node {name} reports {ctype}",
                    description=cond.get("message"),
                    target=target,
                    since=since,
                    observed=since,
                    runbook=RUNBOOK.format(slug=alertname.lower()),
                )
            )
    return findings


# --- workloads --------------------------------------------------------------------------------------------


def detect_deployment(dep: Obj, ctx: Context, now: datetime) -> list[Finding]:
    meta = dep.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    status = dep.get("status") or {}
    conds = conditions(dep)
    workload = WorkloadRef(kind="Deployment", namespace=ns, name=name)
    target = _ref(dep, "Deployment")
    findings: list[Finding] = []
    progressing = conds.get("Progressing") or {}
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        since = parse_time(progressing.get("lastTransitionTime")) or now
        findings.append(
            Finding(
                alertname="KubeDeploymentRolloutStuck",
                severity=Severity.WARNING,
                labels=_labels(
                    ctx, "KubeDeploymentRolloutStuck", Severity.WARNING, namespace=ns, workload=name, deployment=name
                ),
                summary=f"Deployment {ns}/{name} rollout exceeded its progress deadline",
                description=progressing.get("message"),
                target=target,
                workload=workload,
                since=since,
                observed=since,
                runbook=RUNBOOK.format(slug="kubedeploymentrolloutstuck"),
            )
        )
    available = conds.get("Available") or {}
    unavailable = int(status.get("unavailableReplicas") or 0)
    if unavailable > 0 and available.get("status") == "False":
        since = parse_time(available.get("lastTransitionTime")) or now
        if _older_than(since, now, ctx.thresholds.deployment_unavailable_seconds):
            findings.append(
                Finding(
                    alertname="KubeDeploymentReplicasMismatch",
                    severity=Severity.WARNING,
                    labels=_labels(
                        ctx,
                        "KubeDeploymentReplicasMismatch",
                        Severity.WARNING,
                        namespace=ns,
                        workload=name,
                        deployment=name,
                    ),
                    summary=f"Deployment {ns}/{name} has {unavailable} unavailable replicas",
                    description=available.get("message"),
                    target=target,
                    workload=workload,
                    since=since,
                    observed=since,
                    runbook=RUNBOOK.format(slug="kubedeploymentreplicasmismatch"),
                )
            )
    return findings


def _controlled_by(pod: Obj, kind: str, name: str) -> bool:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("controller") and r.get("kind") == kind and r.get("name") == name for r in refs)


def unready_since(cache: Cache, kind: str, ns: str, name: str) -> datetime | None:
    """The earliest moment one of the workload's cached pods became unready (None: no unready pod cached)."""
    earliest: datetime | None = None
    for key, pod in cache.items("Pod"):
        if not key.startswith(f"{ns}/") or not _controlled_by(pod, kind, name):
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        ready = conditions(pod).get("Ready")
        if ready is not None and ready.get("status") == "True":
            continue
        since = parse_time((ready or {}).get("lastTransitionTime")) or _created(pod)
        if since is not None and (earliest is None or since < earliest):
            earliest = since
    return earliest


def _replica_counts(obj: Obj, kind: str) -> tuple[int, int]:
    """(desired, ready) of a StatefulSet or DaemonSet, as its controller reports them."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "StatefulSet":
        replicas = spec.get("replicas")
        return int(1 if replicas is None else replicas), int(status.get("readyReplicas") or 0)
    return int(status.get("desiredNumberScheduled") or 0), int(status.get("numberReady") or 0)


def detect_replicas(obj: Obj, ctx: Context, now: datetime) -> list[Finding]:
    """KubeStatefulSetReplicasMismatch / KubeDaemonSetReplicasMismatch (see the module docstring)."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    kind = str(obj.get("kind"))
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    desired, ready = _replica_counts(obj, kind)
    if ready >= desired:
        return []
    since = unready_since(ctx.cache, kind, ns, name)
    if since is None or not _older_than(since, now, ctx.thresholds.replicas_mismatch_seconds):
        return []
    alertname = f"Kube{kind}ReplicasMismatch"
    slug = "kubestatefulsetreplicasmismatch" if kind == "StatefulSet" else "kubedaemonsetrolloutstuck"
    return [
        Finding(
            alertname=alertname,
            severity=Severity.WARNING,
            labels=_labels(ctx, alertname, Severity.WARNING, namespace=ns, workload=name, **{kind.lower(): name}),
            summary=f"{kind} {ns}/{name} has {desired - ready} of {desired} pods not ready "
            f"for {(now - since).total_seconds():.0f}s",
            description=f"{ready} ready of {desired} desired; the first pod became unready at {since.isoformat()}.",
            target=_ref(obj, kind),
            workload=WorkloadRef(kind=kind, namespace=ns, name=name),
            since=since,
            observed=since,
            runbook=RUNBOOK.format(slug=slug),
        )
    ]


def detect_job(job: Obj, ctx: Context, now: datetime) -> list[Finding]:
    meta = job.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    failed = conditions(job).get("Failed") or {}
    if failed.get("status") != "True":
        return []
    since = parse_time(failed.get("lastTransitionTime")) or now
    workload = workload_of(job, ctx.cache) or WorkloadRef(kind="Job", namespace=ns, name=name)
    return [
        Finding(
            alertname="KubeJobFailed",
            severity=Severity.WARNING,
            labels=_labels(
                ctx,
                "KubeJobFailed",
                Severity.WARNING,
                namespace=ns,
                job_name=name,
                workload=workload.name,
                reason=failed.get("reason"),
            ),
            summary=f"Job {ns}/{name} failed ({failed.get('reason') or 'Failed'})",
            description=failed.get("message"),
            target=_ref(job, "Job"),
            workload=workload,
            since=since,
            observed=since,
            runbook=RUNBOOK.format(slug="kubejobfailed"),
        )
    ]


DETECTORS: Mapping[str, Detector] = {
    "Pod": detect_pod,
    "Node": detect_node,
    "Deployment": detect_deployment,
    "StatefulSet": detect_replicas,
    "DaemonSet": detect_replicas,
    "Job": detect_job,
}


def detect(kind: str, obj: Obj, ctx: Context, now: datetime) -> list[Finding]:
    """Findings of one object (none for kinds without a detector)."""
    detector = DETECTORS.get(kind)
    return detector(obj, ctx, now) if detector else []


def detect_all(ctx: Context, now: datetime, kinds: Iterable[str] = DETECTORS) -> dict[str, Finding]:
    """Every finding in the cache, by fingerprint."""
    out: dict[str, Finding] = {}
    for kind in kinds:
        for _, obj in ctx.cache.items(kind):
            for f in detect(kind, obj, ctx, now):
                out[f.fingerprint] = f
    return out
