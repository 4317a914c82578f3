"""The analyzer's executor: takes alerts, changes and deploys off the bus, keeps the timeline window and the
incidents in PostgreSQL, gathers logs through the cluster port, asks the pure planner for a verdict and
publishes it through the outbox.

* `alert.fired` opens an incident (or joins the open one of the same workload or node, within the incident
  window), gathers the failing pods' and a healthy baseline's logs and the workload's config references
  (bounded, before the transaction), and publishes `diagnosis.made` (or `diagnosis.revised` when a joining
  alert changes the ranking). A node alert is also a timeline entry: pods that shared the node see it.
* `change.recorded`, `deploy.started` and `deploy.rolledback` become timeline entries, taken in batches (group
  commit: the entries handed in while one batch is written form the next): one transaction per batch claims
  them, inserts their rows and reads the open incidents of their namespaces (every open incident of the
  cluster when one is cluster-scoped) once; each such incident is diagnosed again once per batch, and
  `diagnosis.revised` is published when the ranking changed. A batch that fails is taken apart: each entry is
  written alone, so one bad entry fails (and is retried, then dead-lettered) alone.

Every handler claims its event in the inbox in the transaction that writes the incident and the outbox row,
and the incident row is locked while it is diagnosed, so replicas sharing the consumers never publish two
revisions with the same number. Decisions are the planner's; this module only moves data.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.analyzer import store
from opsbus.analyzer.cluster import ClusterReader
from opsbus.analyzer.domain.logs import LogSample, mine
from opsbus.analyzer.domain.metrics import Series
from opsbus.analyzer.domain.planning import (
    AlertFact,
    Snapshot,
    Tuning,
    Verdict,
    diagnose,
    nodes_of,
    ranking_changed,
)
from opsbus.analyzer.domain.timeline import Entry, from_change, from_deploy
from opsbus.analyzer.prometheus import MetricsReader, NoMetrics
from opsbus.analyzer.settings import AnalyzerOptions
from opsbus.analyzer.timeline_rows import CLUSTER_SCOPED, Incoming, claim_all, insert_entries, window
from opsbus.common.batching import GroupCommit
from opsbus.common.bus import Delivery
from opsbus.common.errors import PermanentError
from opsbus.common.events.envelope import Envelope, ObjectRef
from opsbus.common.events.payloads import (
    AlertFired,
    Cause,
    ChangeRecorded,
    DeployRolledBack,
    DeployStarted,
    DiagnosisMade,
    DiagnosisRevised,
    IncidentRef,
)
from opsbus.common.store import Database, add, claim

SERVICE = "analyzer"
log = logging.getLogger(__name__)
MAX_SAMPLES = 24
MAX_POD_NODES = 20
NODE_ALERTS = frozenset({"KubeNodeNotReady", "KubeNodeUnreachable", "KubeNodeMemoryPressure", "KubeNodeDiskPressure"})


def scope_key(alert: AlertFired) -> str:
    """What an incident groups by: the workload, else the node (node alerts), else the pod, else the alert."""
    labels = alert.labels
    if alert.workload is not None:
        return str(alert.workload)
    if labels.get("node") and not labels.get("pod"):
        return f"Node/{CLUSTER_SCOPED}/{labels['node']}"
    if labels.get("pod"):
        return f"Pod/{labels.get('namespace', CLUSTER_SCOPED)}/{labels['pod']}"
    return f"Alert/{labels.get('namespace', CLUSTER_SCOPED)}/{alert.fingerprint}"


def _namespace(alert: AlertFired) -> str:
    if alert.workload is not None:
        return alert.workload.namespace
    return alert.labels.get("namespace") or CLUSTER_SCOPED


def node_entry(event: Envelope, alert: AlertFired) -> Entry | None:
    """A node alert as a timeline entry, so incidents of pods on that node see the node go down."""
    node = alert.labels.get("node")
    if alert.alertname not in NODE_ALERTS or not node or alert.labels.get("pod"):
        return None
    return Entry(
        event_id=event.id,
        at=alert.starts_at,
        source="alert",
        namespace=None,
        object_kind="Node",
        object_name=node,
        workload_kind=None,
        workload_name=None,
        kinds=frozenset({"node_condition"}),
        summary=f"{alert.alertname}: {alert.annotations.summary}"[:512],
        origin="observed",
    )


def _permanent_if_data(exc: Exception) -> Exception:
    """A value PostgreSQL cannot store (SQLSTATE class 22, data exception): retrying will not help, dead-letter it."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(exc, DBAPIError) and isinstance(code, str) and code.startswith("22"):
        return PermanentError(f"the timeline refused it ({code}): {exc.orig}")
    return exc


def diagnosis_id(incident_id: str, revision: int) -> str:
    """Deterministic: a redelivered trigger (or a second replica) produces the same event id."""
    digest = hashlib.sha256(f"{incident_id}/{revision}".encode()).hexdigest()
    return f"diag-{digest[:40]}"


def _samples_json(samples: Sequence[LogSample]) -> list[dict[str, Any]]:
    return [{"pod": s.pod, "container": s.container, "lines": list(s.lines), "failing": s.failing} for s in samples]


def _samples(data: Sequence[dict[str, Any]]) -> list[LogSample]:
    return [LogSample(d["pod"], d["container"], tuple(d["lines"]), d["failing"]) for d in data]


def _series_json(s: Series) -> dict[str, Any]:
    points = [[p.timestamp(), v] for p, v in s.points]
    return {"name": s.name, "query": s.query, "resolution": s.resolution_seconds, "points": points}


def _series_of(d: dict[str, Any]) -> Series:
    points = tuple((datetime.fromtimestamp(t, UTC), float(v)) for t, v in d["points"])
    return Series(name=d["name"], query=d["query"], points=points, resolution_seconds=d["resolution"])


@dataclass(frozen=True, slots=True)
class Gathered:
    samples: list[LogSample]
    config_refs: frozenset[tuple[str, str]] | None
    pod_nodes: dict[str, str] = field(default_factory=dict)  # a workload alert's unready pods -> their nodes
    metrics: tuple[Series, ...] | None = None  # None: no metrics source configured


class Analyzer:
    def __init__(
        self,
        db: Database,
        reader: ClusterReader,
        *,
        options: AnalyzerOptions,
        registry: CollectorRegistry,
        on_outbox: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: MetricsReader | None = None,
    ) -> None:
        self.db = db
        self.reader = reader
        self.metrics: MetricsReader = metrics or NoMetrics()
        self.options = options
        self.tuning: Tuning = options.tuning()
        self.window = timedelta(seconds=options.incident_window_seconds)
        self.on_outbox = on_outbox
        self.clock = clock
        self.diagnoses = Counter(
            "opsbus_analyzer_diagnoses",
            "Diagnoses published, by verb (made, revised) and outcome (explained, unknown).",
            ["verb", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "opsbus_analyzer_diagnosis_latency_seconds",
            "From the alert.fired event's time to its diagnosis.made being queued for publishing.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=registry,
        )
        self.entries = Counter(
            "opsbus_analyzer_timeline_entries", "Timeline entries recorded, by source.", ["source"], registry=registry
        )
        self._incoming = GroupCommit(self.take_entries, max_batch=options.change_batch, name="analyzer:timeline")
        self._failed: dict[tuple[str, str], Exception] = {}  # (consumer, event id) -> its error when written alone

    # --- gathering (I/O outside the transaction, bounded) ------------------------------------------------------
    async def gather(self, alert: AlertFired) -> Gathered:
        pod = alert.labels.get("pod")
        container = alert.labels.get("container")
        ns = _namespace(alert)
        evidence = [
            LogSample(pod or "?", e.container, tuple(e.lines), failing=True) for e in alert.evidence.logs if e.lines
        ]
        series = await self._series(alert)
        if not self.options.read_cluster:
            return Gathered(evidence, None, metrics=series)

        async def failing() -> list[LogSample]:
            if not pod:
                return []
            lines = await self.reader.logs(ns, pod, container, self.options.log_lines)
            return [LogSample(pod, container or "?", lines, failing=True)] if lines else []

        async def baseline() -> list[LogSample]:
            if alert.workload is None or not pod:
                return []
            pods = await self.reader.healthy_pods(alert.workload, frozenset({pod}), self.options.baseline_pods)
            logs = await asyncio.gather(*(self.reader.logs(ns, p, container, self.options.log_lines) for p in pods))
            return [
                LogSample(p, container or "?", lines, failing=False)
                for p, lines in zip(pods, logs, strict=True)
                if lines
            ]

        async def refs() -> frozenset[tuple[str, str]] | None:
            return await self.reader.config_refs(alert.workload) if alert.workload else None

        async def nodes() -> dict[str, str]:
            # A workload alert names no pod: where its unready pods run tells whether they share a node.
            if alert.workload is None or pod:
                return {}
            return await self.reader.unready_pods(alert.workload, MAX_POD_NODES)

        try:
            fetched, base, config, pod_nodes = await asyncio.wait_for(
                asyncio.gather(failing(), baseline(), refs(), nodes()),
                timeout=self.options.cluster_timeout_seconds * 2,
            )
        except TimeoutError:
            log.info("cluster reads for %s took too long: diagnosing from the alert's evidence", scope_key(alert))
            return Gathered(evidence, None, metrics=series)
        return Gathered((fetched or evidence) + base, config, pod_nodes, series)

    async def _series(self, alert: AlertFired) -> tuple[Series, ...] | None:
        """The workload's metric series up to now (bounded; a source that does not answer in time gives none)."""
        if alert.workload is None:
            return None
        end = max(self.clock(), alert.starts_at)
        start = alert.starts_at - timedelta(seconds=self.options.metric_lookback_seconds)
        try:
            return await asyncio.wait_for(
                self.metrics.series(alert.workload, start, end), timeout=self.options.cluster_timeout_seconds * 2
            )
        except TimeoutError:
            log.info("metrics of %s took too long: diagnosing without them", alert.workload)
            return ()

    # --- handlers ---------------------------------------------------------------------------------------------
    async def on_alert(self, delivery: Delivery) -> None:
        event = delivery.event
        alert = event.payload_as(AlertFired)
        gathered = await self.gather(alert)
        now = self.clock()
        async with self.db.sessions.begin() as s:
            if not await claim(s, store.TABLES.inbox, "analyzer-alerts", event.id):
                return
            entry = node_entry(event, alert)
            if entry is not None:
                await self._record(s, [(event.cluster, entry)], now)
            key = scope_key(alert)
            t = store.incidents
            row = (
                (
                    await s.execute(
                        select(t)
                        .where(
                            t.c.cluster == event.cluster, t.c.scope_key == key, t.c.last_alert_at >= now - self.window
                        )
                        .order_by(t.c.last_alert_at.desc())
                        .limit(1)
                        .with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            fact: dict[str, Any] = {"event_id": event.id, "alert": alert.model_dump(mode="json", exclude_none=True)}
            if gathered.pod_nodes:
                fact["pod_nodes"] = gathered.pod_nodes
            if gathered.metrics is not None:
                fact["metrics"] = [_series_json(s) for s in gathered.metrics]
            if row is None:
                await self._open(s, event=event, alert=alert, key=key, fact=fact, gathered=gathered, now=now)
                return
            alerts = [*row["alerts"], fact]
            samples = (row["logs"] + _samples_json(gathered.samples))[-MAX_SAMPLES:]
            refs = row["config_refs"] if gathered.config_refs is None else sorted(map(list, gathered.config_refs))
            await self._rediagnose(
                s,
                dict(row),
                event,
                now,
                reason=f"alert {alert.alertname} ({alert.fingerprint}) joined the incident",
                alerts=alerts,
                logs=samples,
                refs=refs,
            )

    async def on_change(self, delivery: Delivery) -> None:
        event = delivery.event
        await self._take(Incoming(event, from_change(event.id, event.payload_as(ChangeRecorded)), "analyzer-changes"))

    async def on_deploy(self, delivery: Delivery) -> None:
        event = delivery.event
        payload = event.payload()
        if not isinstance(payload, DeployStarted | DeployRolledBack):
            return
        await self._take(Incoming(event, from_deploy(event.id, event.time, payload), "analyzer-deploys"))

    async def _take(self, item: Incoming) -> None:
        """Returns once the entry's batch is committed; raises its own error (or the batch's) otherwise."""
        await self._incoming.submit(item)
        failed = self._failed.pop((item.consumer, item.event.id), None)
        if failed is not None:
            raise failed

    async def take_entries(self, items: Sequence[Incoming]) -> None:
        """One transaction for the batch; when it fails, one per entry (each entry's error goes to its handler)."""
        try:
            await self._write_entries(items)
        except Exception as exc:
            if len(items) == 1:
                raise
            log.warning("a batch of %d timeline entries failed (%s): writing them one by one", len(items), exc)
            for item in items:
                try:
                    await self._write_entries([item])
                except Exception as one:
                    self._failed[(item.consumer, item.event.id)] = _permanent_if_data(one)

    async def _write_entries(self, items: Sequence[Incoming]) -> None:
        now = self.clock()
        async with self.db.sessions.begin() as s:
            fresh = await claim_all(s, items)
            items = [i for i in items if (i.consumer, i.event.id) in fresh]
            if not items:
                return
            await self._record(s, [(i.event.cluster, i.entry) for i in items], now)
            t = store.incidents
            reach = []
            for cluster in sorted({i.event.cluster for i in items}):
                spaces = {i.entry.namespace for i in items if i.event.cluster == cluster}
                if None in spaces:  # a cluster-scoped change: every open incident of the cluster may see it
                    reach.append(t.c.cluster == cluster)
                else:
                    reach.append(and_(t.c.cluster == cluster, t.c.namespace.in_(sorted(n for n in spaces if n))))
            rows = (
                (
                    await s.execute(
                        select(t)
                        .where(or_(*reach), t.c.last_alert_at >= now - self.window)
                        .order_by(t.c.id)
                        .with_for_update()
                    )
                )
                .mappings()
                .all()
            )
            for row in rows:
                seen = [
                    i
                    for i in items
                    if i.event.cluster == row["cluster"] and i.entry.namespace in (None, row["namespace"])
                ]
                if seen:
                    await self._rediagnose(
                        s,
                        dict(row),
                        seen[-1].event,
                        now,
                        alerts=row["alerts"],
                        logs=row["logs"],
                        refs=row["config_refs"],
                        batch=seen,
                    )

    # --- store and diagnosis ----------------------------------------------------------------------------------
    async def _record(self, s: AsyncSession, entries: Sequence[tuple[str, Entry]], now: datetime) -> None:
        await insert_entries(s, entries, now)
        for _, entry in entries:
            self.entries.labels(entry.source).inc()

    async def _verdict(
        self,
        s: AsyncSession,
        *,
        cluster: str,
        incident_id: str,
        alerts: Sequence[dict[str, Any]],
        logs: Sequence[dict[str, Any]],
        refs: Sequence[Sequence[str]] | None,
        now: datetime,
    ) -> tuple[Snapshot, Verdict]:
        facts = tuple(
            AlertFact(a["event_id"], AlertFired.model_validate(a["alert"]), a.get("pod_nodes") or {}) for a in alerts
        )
        first = facts[0].alert
        first_at = min(f.alert.starts_at for f in facts)
        samples = _samples(logs)
        stored = [a["metrics"] for a in alerts if "metrics" in a]
        snap = Snapshot(
            incident_id=incident_id,
            alerts=facts,
            timeline=await window(s, cluster, _namespace(first), nodes_of(facts), first_at - self.tuning.lookback),
            now=now,
            logs=mine(samples) if samples else None,
            config_refs=frozenset((k, n) for k, n in refs) if refs is not None else None,
            metrics=tuple(_series_of(s) for s in stored[-1]) if stored else None,  # the latest read
        )
        return snap, diagnose(snap, self.tuning)

    def _incident_ref(self, snap: Snapshot) -> IncidentRef:
        first = snap.alerts[0].alert
        node = first.labels.get("node") if first.workload is None and not first.labels.get("pod") else None
        return IncidentRef(
            incident_id=snap.incident_id,
            alert_fingerprint=first.fingerprint,
            alertname=first.alertname,
            workload=first.workload,
            node=node,
            first_alert_at=snap.first_alert_at,
            alerts=tuple(dict.fromkeys(f.alert.fingerprint for f in snap.alerts))[:256],
        )

    def _envelope(self, payload: DiagnosisMade | DiagnosisRevised, first: Envelope, cause: Envelope) -> Envelope:
        alert = first.payload_as(AlertFired)
        node = alert.labels.get("node")
        if alert.workload is not None:
            obj = alert.workload.as_object_ref()
        elif node and not alert.labels.get("pod"):
            obj = ObjectRef(kind="Node", name=node)
        else:
            obj = first.object
        event = Envelope.build(
            payload,
            service=SERVICE,
            cluster=first.cluster,
            obj=obj,
            cause=cause,
            event_id=diagnosis_id(payload.incident.incident_id, payload.revision),
            time=payload.diagnosed_at,
        )
        # Every diagnosis belongs to the incident's chain (the gateway files it under the first alert's id),
        # whatever event triggered the revision.
        return event.model_copy(update={"correlationid": payload.incident.incident_id})

    async def _open(
        self,
        s: AsyncSession,
        *,
        event: Envelope,
        alert: AlertFired,
        key: str,
        fact: dict[str, Any],
        gathered: Gathered,
        now: datetime,
    ) -> None:
        refs = sorted(map(list, gathered.config_refs)) if gathered.config_refs is not None else None
        logs = _samples_json(gathered.samples)[-MAX_SAMPLES:]
        snap, verdict = await self._verdict(
            s, cluster=event.cluster, incident_id=event.id, alerts=[fact], logs=logs, refs=refs, now=now
        )
        payload = DiagnosisMade(
            incident=self._incident_ref(snap),
            revision=1,
            outcome=verdict.outcome,
            causes=verdict.causes,
            checked=verdict.checked,
            diagnosed_at=now,
        )
        await s.execute(
            insert(store.incidents).values(
                id=event.id,
                cluster=event.cluster,
                namespace=_namespace(alert),
                scope_key=key,
                opened_at=now,
                last_alert_at=now,
                first_alert=event.model_dump(mode="json", exclude_none=True),
                alerts=[fact],
                logs=logs,
                config_refs=refs,
                revision=1,
                outcome=verdict.outcome.value,
                top_kind=verdict.causes[0].kind.value if verdict.causes else None,
                diagnosis=payload.model_dump(mode="json", exclude_none=True),
                updated_at=now,
            )
        )
        await add(s, store.TABLES.outbox, self._envelope(payload, event, event))
        self.on_outbox()
        self.diagnoses.labels("made", verdict.outcome.value).inc()
        self.latency.observe(max(0.0, (self.clock() - event.time).total_seconds()))
        top = verdict.causes[0].summary if verdict.causes else "unknown"
        log.info("incident %s (%s): %s", event.id, key, top)

    async def _rediagnose(
        self,
        s: AsyncSession,
        row: dict[str, Any],
        trigger: Envelope,
        now: datetime,
        *,
        alerts: Sequence[dict[str, Any]],
        logs: Sequence[dict[str, Any]],
        refs: Sequence[Sequence[str]] | None,
        reason: str = "",
        batch: Sequence[Incoming] = (),
    ) -> None:
        """Diagnose an open incident again. Triggered by a batch of entries: the one the new top cause rests on (else
        the batch's last) is the revision's cause and reason."""
        snap, verdict = await self._verdict(
            s, cluster=row["cluster"], incident_id=row["id"], alerts=alerts, logs=logs, refs=refs, now=now
        )
        if batch:
            refs_of_top = {e.ref for e in verdict.causes[0].evidence} if verdict.causes else set()
            pick = next((i for i in reversed(batch) if i.event.id in refs_of_top), batch[-1])
            trigger = pick.event
            more = f" (one of {len(batch)} changes taken in together)" if len(batch) > 1 else ""
            reason = f"{pick.entry.source} {pick.event.id}: {pick.entry.summary}{more}"[:512]
        previous = row["diagnosis"].get("causes", [])
        before = [Cause.model_validate(c) for c in previous]
        values: dict[str, Any] = {"alerts": list(alerts), "logs": list(logs), "config_refs": refs, "updated_at": now}
        if trigger.type == AlertFired.event_type:
            values["last_alert_at"] = now
        if ranking_changed(before, verdict.causes):
            revision = row["revision"] + 1
            payload = DiagnosisRevised(
                incident=self._incident_ref(snap),
                revision=revision,
                outcome=verdict.outcome,
                causes=verdict.causes,
                checked=verdict.checked,
                diagnosed_at=now,
                reason=reason,
                previous_top=before[0].kind if before else None,
            )
            values |= {
                "revision": revision,
                "outcome": verdict.outcome.value,
                "top_kind": verdict.causes[0].kind.value if verdict.causes else None,
                "diagnosis": payload.model_dump(mode="json", exclude_none=True),
            }
            first = Envelope.model_validate(row["first_alert"])
            await add(s, store.TABLES.outbox, self._envelope(payload, first, trigger))
            self.on_outbox()
            self.diagnoses.labels("revised", verdict.outcome.value).inc()
            log.info("incident %s revised (r%d): %s", row["id"], revision, reason)
        t = store.incidents
        await s.execute(update(t).where(t.c.id == row["id"]).values(**values))
