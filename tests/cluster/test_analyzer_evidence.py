"""The analyzer on the sandbox, from evidence no change explains: a dependency outage visible only in the logs.

kwok serves each container's log from a file the sandbox writes (`sandbox.sh log`, and `sandbox.sh chaos` for a
crashing pod's last words); the analyzer reads it through the Kubernetes API (pods/log) and mines it with drain3
against the healthy pods' logs. The new template `connection refused to postgres:5432` appears only in the failing
pods, and it is the top cause (no change explains it: nothing else happened).

Real watcher, real NATS and PostgreSQL, real apiserver and kwok; nothing here feeds the analyzer directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ActionKind, DiagnosisMade, DiagnosisRevised
from opsbus.common.events.payloads.diagnosis import CauseKind, DiagnosisOutcome, EvidenceKind
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, is_running_and_ready, wait_until
from tests.cluster.test_analyzer_diagnosis import analyzer
from tests.cluster.test_watcher_alerts import CLUSTER, Alerts
from tests.cluster.test_watcher_replicas import Replicas, replica_settings
from tests.integration.analyzer_stack import AnalyzerStack

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["analyzer"]  # the fixture, shared with test_analyzer_diagnosis

MakeBus = Callable[..., Awaitable[Bus]]
Diagnosis = DiagnosisMade | DiagnosisRevised
HEALTHY = [
    'level=info msg="starting app" version=1',
    'level=info msg="listening on :8080"',
    'level=info msg="connected to postgres:5432" pool=10',
    *[f'level=info msg="GET /orders/{n} 200" duration={n % 7 + 2}ms' for n in range(20)],
]
OUTAGE = 'level=error msg="query failed" error="connection refused to postgres:5432"'


def diagnosis(e: Envelope) -> Diagnosis:
    payload = e.payload()
    assert isinstance(payload, DiagnosisMade | DiagnosisRevised)
    return payload


class Diagnoses:
    """Every diagnosis.made/revised of one namespace, as a team subscribed to them sees them."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def on_message(self, msg: Any) -> None:
        self.events.append(Envelope.from_json(msg.data))

    async def wait(self, match: Callable[[Envelope, Diagnosis], bool], timeout: float, what: str) -> Envelope:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if match(e, diagnosis(e)):
                    return e
            await asyncio.sleep(0.2)
        seen = [(e.subject, e.verb, [c.summary for c in diagnosis(e).causes]) for e in self.events]
        pytest.fail(f"no diagnosis with {what} within {timeout:.0f}s; saw {seen}")


@pytest.fixture
async def diagnoses(make_bus: MakeBus, cluster: Cluster) -> AsyncIterator[Diagnoses]:
    bus = await make_bus("diagnoses", registry_=CollectorRegistry())
    seen = Diagnoses()
    sub = await bus.nc.subscribe(f"diagnosis.*.{CLUSTER}.{cluster.namespace}", cb=seen.on_message)
    yield seen
    await sub.unsubscribe()


def write_log(cluster: Cluster, tmp: Path, pod: str, lines: list[str]) -> None:
    """The container's log, served by kwok from the sandbox's own log directory (sandbox.sh log)."""
    source = tmp / f"{pod}.txt"
    source.write_text("\n".join(lines) + "\n")
    cluster.sandbox("log", cluster.namespace, pod, "app", str(source))


async def test_a_dependency_outage_seen_only_in_the_logs_is_the_top_cause(
    cluster: Cluster,
    sandbox: SandboxHandle,
    make_bus: MakeBus,
    analyzer: AnalyzerStack,
    diagnoses: Diagnoses,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replicas = Replicas(replica_settings(cluster, sandbox, thresholds={"resolve_after_seconds": 2}), sandbox, make_bus)
    alerts = Alerts(await make_bus("probe", registry_=CollectorRegistry()), cluster.namespace)
    await alerts.start()
    try:
        cluster.create_deployment("api", replicas=3)
        pods = await asyncio.to_thread(wait_until, "api running", lambda: cluster.running_pods("api", 3), 120)
        names = sorted(str(p.metadata.name) for p in pods)
        for name in names:
            await asyncio.to_thread(write_log, cluster, tmp_path, name, HEALTHY)
        # two of api's three pods lose their database; the crash log ends with the error (sandbox.sh chaos)
        monkeypatch.setenv("OPSBUS_CHAOS_LOG_LINE", OUTAGE)
        failing = names[:2]
        for name in failing:
            await asyncio.to_thread(cluster.chaos, "crashloop", f"pod/{name}")
        # Both crash before anyone looks (otherwise the second, still Ready for a few seconds, would be read as
        # healthy baseline with the very line that is new): the watcher starts on a namespace in trouble.
        await asyncio.to_thread(
            wait_until,
            "both crashing",
            lambda: not any(is_running_and_ready(p) for p in cluster.pods("api") if p.metadata.name in failing) or None,
            60,
        )
        await replicas.start()
        await alerts.wait("fired", "KubePodCrashLooping")
        # Two pods crash, so two alerts fire; the incident (and its diagnosis's correlation) is the alert the
        # analyzer took in first, which need not be the first one this probe read.
        made = await diagnoses.wait(
            lambda e, d: e.verb == "made" and e.correlationid in {a.id for a in alerts.events if a.verb == "fired"},
            timeout=30,
            what="one of the namespace's alerts",
        )
    finally:
        await alerts.stop()
        await replicas.close()

    d = made.payload_as(DiagnosisMade)
    assert d.outcome is DiagnosisOutcome.EXPLAINED, d
    top = d.causes[0]
    assert (top.kind, top.target, top.suggested_action) == (CauseKind.SHARED_DEPENDENCY, None, ActionKind.NOTIFY_ONLY)
    assert "cannot reach postgres" in top.summary, top.summary
    (log,) = [e for e in top.evidence if e.kind is EvidenceKind.LOG_TEMPLATE]
    assert "connection refused to postgres:5432" in log.ref, log
    in_pods = (log.detail or "").rsplit("(in ", 1)[1]
    assert any(f in in_pods for f in failing) and names[2] not in in_pods  # only in the failing pods
    assert top.scores.signature >= 0.7  # checked against a healthy baseline, not guessed
    logs_checked = next(c for c in d.checked if c.source == "logs")
    detail = logs_checked.detail or ""
    assert "of healthy ones" in detail and not detail.startswith("0 lines"), detail
