"""The healer's policy endpoints (`opsbus.healer.editing`: read, versions, validate, preview, put) served on the
real bus over the real policy store in PostgreSQL, exactly as the healer service wires them, without the rest
of the healer (which needs a cluster). Used by the gateway's policy tests and the console's policy journey."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client

from opsbus.common.audit import Auditor
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity, WorkloadRef
from opsbus.common.rpc import serve
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.healer import editing
from opsbus.healer.domain.planning import Guards
from opsbus.healer.policies import PolicyStore
from opsbus.healer.store import MIGRATIONS, SCHEMA

POLICIES = """\
policies:
  - name: crashloop
    match:
      alertname: KubePodCrashLooping
    ladder:
      - action: delete_pod
        verify: alert_resolved
        timeout: 2m
      - action: rollout_restart
        verify: workload_available
        timeout: 5m
"""


@asynccontextmanager
async def policy_endpoints(nc: Client, database_url: str, document: str = POLICIES) -> AsyncIterator[PolicyStore]:
    settings = DatabaseSettings.model_validate({"url": database_url})
    await upgrade(settings, MIGRATIONS, SCHEMA)
    db = Database.from_settings(settings, application_name="healer-policies")
    store = PolicyStore(db, lambda: datetime.now(UTC))
    await store.load(document, author="config")
    svc = await serve(
        nc, "healer", "0.0.0", editing.endpoints(store, Guards(), Auditor(service="healer", cluster="prod"))
    )
    try:
        yield store
    finally:
        await svc.stop()
        await db.close()


def crashing(namespace: str, pod: str, workload: str = "web") -> Envelope:
    """A crash-looping pod of a Deployment, as the watcher reports it (the preview's restart needs the workload)."""
    labels = {"alertname": "KubePodCrashLooping", "namespace": namespace, "pod": pod, "workload": workload}
    alert = AlertFired(
        fingerprint=f"{abs(hash((namespace, pod))):016x}"[:16],
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels=labels,
        annotations=AlertAnnotations(summary=f"pod {pod} is crash-looping"),
        starts_at=datetime.now(UTC) - timedelta(seconds=30),
        source=AlertSource.WATCHER,
        workload=WorkloadRef(kind="Deployment", namespace=namespace, name=workload),
    )
    return Envelope.build(
        alert, service="watcher", cluster="prod", obj=ObjectRef(kind="Pod", namespace=namespace, name=pod)
    )
