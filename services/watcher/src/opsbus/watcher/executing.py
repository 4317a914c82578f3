"""The watcher's executor: turns cache changes and detector findings into published events.

`Engine.on_change` is called by the informers for every effective change: it keeps the Kubernetes Event
index, publishes `cluster.event` for meaningful changes (not heartbeats), `change.recorded` for changes the
timeline follows (pod templates, replicas, ConfigMap/Secret digests, HPAs, node conditions and taints; never
for the first list), and marks the object for detection.
`Engine.evaluate` runs the detectors on changed objects (and on all objects every rescan interval, for
time-bounded rules), asks the alert book for decisions, gathers evidence (recent Events; last log lines of
crashed containers, when the kubelet serves them), publishes `alert.fired` / `alert.resolved` with their
deterministic ids, and records each decision in the audit trail. Publishes are pipelined (`send`), never one
awaited ack per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from opsbus.common.audit import Auditor
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads.alert import AlertFired, AlertResolved
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.cluster import ChangeType
from opsbus.common.events.payloads.common import LogExcerpt, ResourceRef
from opsbus.watcher.domain.alerting import (
    AlertBook,
    Damp,
    Decision,
    EventIndex,
    Fire,
    Resolve,
    fired_payload,
    resolved_payload,
)
from opsbus.watcher.domain.cache import Cache, Change
from opsbus.watcher.domain.changes import FOLLOWED, Observed, change_id, record
from opsbus.watcher.domain.detecting import DETECTORS, Context, Finding, RestartHistory, detect
from opsbus.watcher.domain.objects import Resource, event_summary, meaningful, summarize
from opsbus.watcher.settings import WatcherOptions

log = logging.getLogger(__name__)

SERVICE = "watcher"


class Sender(Protocol):
    async def send(self, event: Envelope) -> asyncio.Future[Any]: ...


class LogSource(Protocol):
    async def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int, timeout: float
    ) -> list[str] | None: ...


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.firing = Gauge(
            "opsbus_watcher_alerts_firing", "Alerts currently firing, by alertname.", ["alertname"], registry=registry
        )
        self.latency = Histogram(
            "opsbus_watcher_detection_latency_seconds",
            "From the object's status transition (as the apiserver reports it) to the alert's publish.",
            ["alertname"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
            registry=registry,
        )
        self.decisions = Gauge(
            "opsbus_watcher_last_evaluation_seconds", "Duration of the last detector evaluation.", registry=registry
        )
        self.flapping = Counter(
            "opsbus_watcher_flapping_alerts",
            "Alerts that entered the flapping phase (announced once, then damped), by alertname.",
            ["alertname"],
            registry=registry,
        )
        self.changes = Counter(
            "opsbus_watcher_changes_recorded",
            "change.recorded events published, by object kind and first change kind.",
            ["kind", "change"],
            registry=registry,
        )
        self.damped = Counter(
            "opsbus_watcher_flaps_damped",
            "Flaps of flapping alerts that published nothing (only audited), by alertname.",
            ["alertname"],
            registry=registry,
        )


class Engine:
    def __init__(
        self,
        *,
        cluster: str,
        options: WatcherOptions,
        sender: Sender,
        logs: LogSource | None,
        registry: CollectorRegistry,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache: Cache | None = None,
    ) -> None:
        self.cluster = cluster
        self.options = options
        self.sender = sender
        self.logs = logs
        self.clock = clock
        self.cache = cache or Cache()
        t = options.thresholds
        self.ctx = Context(
            cluster=cluster,
            cache=self.cache,
            thresholds=t,
            restarts=RestartHistory(window=timedelta(seconds=t.restart_spike_window_seconds)),
        )
        self.book = AlertBook(options.resolution.policies(t.resolve_after_seconds))
        self.events = EventIndex()
        self.auditor = Auditor(service=SERVICE, cluster=cluster)
        self.metrics = EngineMetrics(registry)
        self.findings: dict[str, dict[str, Finding]] = {}  # object key -> fingerprint -> finding
        self.saturation: dict[str, tuple[Finding, str]] = {}  # fingerprint -> (finding, object key), from metrics
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._wake = asyncio.Event()
        self.synced = False  # detection starts once every informer has listed
        self._last_rescan: datetime | None = None
        self.pending_acks: set[asyncio.Future[Any]] = set()

    # --- input ------------------------------------------------------------------------------------------
    async def on_change(self, resource: Resource, change: Change, initial: bool) -> None:
        kind = resource.kind
        objkey = f"{kind}/{change.key}"
        if kind == "Event":
            summary = event_summary(change.obj)
            if change.type == ChangeType.DELETED:
                self.events.remove(change.key, summary)
            else:
                self.events.put(change.key, summary)
        if (
            resource.cluster_events
            and self.options.publish_cluster_events
            and (not initial or self.options.publish_initial_list)
        ):
            await self._publish_cluster_event(resource, change)
        if self.options.record_changes and not initial and kind in FOLLOWED:
            await self._record_change(resource, change)
        if kind in DETECTORS:
            if change.type == ChangeType.DELETED:
                self._deleted.add(objkey)
                self.findings.pop(objkey, None)
                self._dirty.discard(objkey)
                self.saturation = {fp: v for fp, v in self.saturation.items() if v[1] != objkey}
                if kind == "Pod":
                    self.ctx.restarts.forget_pod(change.key)
            else:
                self._deleted.discard(objkey)
                self._dirty.add(objkey)
            self._wake.set()

    async def _publish_cluster_event(self, resource: Resource, change: Change) -> None:
        payload = summarize(resource, change.type, change.obj)
        old = change.old
        if (
            change.type == ChangeType.MODIFIED
            and old is not None
            and not meaningful(summarize(resource, change.type, old), payload)
        ):
            return
        ev_id = None
        if change.type != ChangeType.DELETED:
            # replicas watching the same object publish the same id: stored once within the dedupe window
            ev_id = f"ce-{payload.uid}-{payload.resource_version}"
        env = Envelope.build(
            payload,
            service=SERVICE,
            cluster=self.cluster,
            obj=ObjectRef(kind=payload.kind, namespace=payload.namespace, name=payload.name),
            event_id=ev_id,
        )
        await self._send(env)

    async def _record_change(self, resource: Resource, change: Change) -> None:
        """`change.recorded` for a followed object whose followed fields changed (never the first list)."""
        try:
            payload = record(Observed(resource, change, self.clock(), self.cache))
        except ValueError as exc:  # a payload the event model refuses: a bug here, not a reason to drop the watch
            log.error("no change.recorded for %s %s: %s", resource.kind, change.key, exc)
            return
        if payload is None:
            return
        env = Envelope.build(
            payload,
            service=SERVICE,
            cluster=self.cluster,
            obj=payload.object.as_object_ref(),
            event_id=change_id(self.cluster, change),
            time=payload.observed_at,
        )
        await self._send(env)
        self.metrics.changes.labels(resource.kind, payload.kinds[0].value).inc()

    def set_saturation(self, findings: list[Finding]) -> None:
        """Replace the findings of the saturation rules (metrics source); the next evaluation decides on them."""
        self.saturation = {
            f.fingerprint: (f, f"{f.target.kind}/{f.target.namespace}/{f.target.name}") for f in findings
        }
        self._wake.set()

    # --- the loop ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        interval = self.options.evaluate_interval_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives as the event fires, and this loop would then never stop.
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            if self.synced:
                try:
                    await self.evaluate()
                except Exception:
                    log.exception("evaluation failed")

    async def evaluate(self, now: datetime | None = None) -> list[Decision]:
        """Detect on changed objects (all of them each rescan), decide, publish. Returns the decisions."""
        now = now or self.clock()
        started = asyncio.get_running_loop().time()
        rescan = (
            self._last_rescan is None
            or (now - self._last_rescan).total_seconds() >= 10 * self.options.evaluate_interval_seconds
        )
        if rescan:
            self._last_rescan = now
            keys = {f"{kind}/{key}" for kind in DETECTORS for key, _ in self.cache.items(kind)}
        else:
            keys = set(self._dirty)
        self._dirty.clear()
        for objkey in keys:
            kind, _, key = objkey.partition("/")
            obj = self.cache.get(kind, key)
            if obj is None:
                self.findings.pop(objkey, None)
                continue
            found = {f.fingerprint: f for f in detect(kind, obj, self.ctx, now)}
            if found:
                self.findings[objkey] = found
            else:
                self.findings.pop(objkey, None)
        present = {fp: (f, objkey) for objkey, fs in self.findings.items() for fp, f in fs.items()}
        present.update(self.saturation)
        deleted, self._deleted = self._deleted, set()
        decisions = self.book.evaluate(present, deleted, now)
        fires = [d for d in decisions if isinstance(d, Fire)]
        logs = await asyncio.gather(*(self._logs(d.finding) for d in fires)) if fires else []
        for fire, excerpts in zip(fires, logs, strict=True):
            await self._fire(fire, excerpts, now)
        for decision in decisions:
            if isinstance(decision, Resolve):
                await self._resolve(decision, now)
            elif isinstance(decision, Damp):
                await self._damp(decision)
        self.metrics.decisions.set(asyncio.get_running_loop().time() - started)
        return decisions

    # --- effects ----------------------------------------------------------------------------------------
    async def _logs(self, finding: Finding) -> tuple[LogExcerpt, ...] | None:
        """Previous-run log lines of the crashed containers; None when none could be read."""
        if self.logs is None or not finding.log_containers or self.options.log_lines <= 0:
            return None
        target = finding.target
        out: list[LogExcerpt] = []
        for container in finding.log_containers:
            try:
                lines = await self.logs.pod_log(
                    target.namespace or "",
                    target.name,
                    container,
                    previous=True,
                    lines=self.options.log_lines,
                    timeout=self.options.log_timeout_seconds,
                )
            except Exception:
                lines = None
            if lines:
                out.append(LogExcerpt(container=container, previous=True, lines=tuple(line[:1024] for line in lines)))
        return tuple(out) or None

    async def _fire(self, decision: Fire, logs: tuple[LogExcerpt, ...] | None, now: datetime) -> None:
        f = decision.finding
        extra = {}
        if f.log_containers and logs is None:
            extra["logs"] = "unavailable: the kubelet served no log lines for the previous run"
        payload = fired_payload(
            f,
            decision.starts_at,
            events=self.events.recent(f.target, self.options.thresholds.evidence_events),
            logs=logs or (),
            extra=extra,
            flapping=decision.flapping,
        )
        env = Envelope.build(
            payload,
            service=SERVICE,
            cluster=self.cluster,
            obj=f.target.as_object_ref(),
            event_id=decision.event_id,
            time=now,
        )
        await self._send(env)
        self.book.fired(decision, payload, now)
        self.metrics.firing.labels(f.alertname).inc()
        if decision.flapping:
            self.metrics.flapping.labels(f.alertname).inc()
        if f.observed is not None:
            self.metrics.latency.labels(f.alertname).observe(max((self.clock() - f.observed).total_seconds(), 0.0))
        await self._audit(env, payload, "alert.fire", f"fired: {payload.annotations.summary}")
        log.info("fired %s %s (%s)", f.alertname, f.target.as_object_ref().as_subject(), payload.fingerprint)

    async def _resolve(self, decision: Resolve, now: datetime) -> None:
        payload = resolved_payload(decision)
        active = decision.alert
        env = Envelope.build(
            payload,
            service=SERVICE,
            cluster=self.cluster,
            obj=active.target.as_object_ref(),
            event_id=decision.event_id,
            time=now,
        )
        await self._send(env)
        self.book.resolved(decision, now)
        self.metrics.firing.labels(payload.alertname).dec()
        await self._audit(env, payload, "alert.resolve", f"resolved: {decision.resolution}")
        log.info("resolved %s %s (%s)", payload.alertname, env.subject, decision.resolution)

    async def _damp(self, decision: Damp) -> None:
        """A flap of a flapping alert: nothing on the ALERT stream, a deliberate no-op in the audit trail."""
        payload = decision.alert.fired
        self.metrics.damped.labels(payload.alertname).inc()
        entry = self.auditor.entry(
            action="alert.damp",
            target=decision.alert.target,
            outcome=AuditOutcome.SKIPPED,
            reason=decision.reason[:1000],
            details={
                "fingerprint": payload.fingerprint,
                "alertname": payload.alertname,
                "fired_id": decision.alert.event_id,
            },
            idempotency_key=f"alert.damp:{decision.alert.event_id}:{decision.flap}",
        )
        await self._send(entry)
        log.info("damped %s %s: %s", payload.alertname, payload.fingerprint, decision.reason)

    async def _audit(self, cause: Envelope, payload: AlertFired | AlertResolved, action: str, reason: str) -> None:
        target = self.book.firing.get(payload.fingerprint)
        ref = target.target if target is not None else None
        obj = cause.object
        entry = self.auditor.entry(
            action=action,
            target=ref or ResourceRef(kind=obj.kind, name=obj.name, namespace=obj.namespace),
            outcome=AuditOutcome.EXECUTED,
            reason=reason[:1000],
            details={"fingerprint": payload.fingerprint, "alertname": payload.alertname, "event_id": cause.id},
            cause=cause,
            idempotency_key=f"{action}:{cause.id}",
        )
        await self._send(entry)

    async def _send(self, env: Envelope) -> None:
        ack = await self.sender.send(env)
        self.pending_acks.add(ack)
        ack.add_done_callback(self._acked)

    def _acked(self, ack: asyncio.Future[Any]) -> None:
        self.pending_acks.discard(ack)
        if not ack.cancelled() and ack.exception() is not None:
            log.error("publish failed: %s", ack.exception())


# --- restart: the book from the ALERT stream ----------------------------------------------------------------


async def read_firing(js: JetStreamContext, cluster: str, timeout: float = 2.0) -> list[tuple[AlertFired, str, str]]:
    """Alerts this watcher fired on `cluster` that have no resolve in the ALERT stream yet."""
    try:
        info = await js.stream_info("ALERT")
    except Exception:
        return []
    if info.state.messages == 0:
        return []
    firing: dict[str, tuple[AlertFired, str, str]] = {}
    sub = await js.subscribe(
        f"alert.*.{cluster}.>", stream="ALERT", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=timeout)
            except TimeoutError:
                break
            try:
                env = Envelope.from_json(msg.data)
                if env.service == SERVICE:
                    payload = env.payload()
                    if isinstance(payload, AlertFired):
                        ref = env.object
                        objkey = f"{ref.kind}/{ref.namespace}/{ref.name}" if ref.namespace else f"{ref.kind}/{ref.name}"
                        firing[payload.fingerprint] = (payload, env.id, objkey)
                    elif isinstance(payload, AlertResolved):
                        firing.pop(payload.fingerprint, None)
            except Exception as exc:
                log.warning("skipping undecodable ALERT message: %s", exc)
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return list(firing.values())
