"""The gateway's audit consumer stores an `audit.recorded` in one statement (inbox claim and row together): every
field lands in `audit_entries` as the API shows it, and a redelivery of the same event adds nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from opsbus.common.audit import Auditor
from opsbus.common.bus import Delivery
from opsbus.common.errors import SkipError
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.gateway import store
from opsbus.gateway.readmodel import AUDIT_CONSUMER
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


async def test_an_entry_is_stored_once_with_every_field(stack: GatewayStack) -> None:
    reads = (await stack.start()).ctx.reads
    auditor = Auditor(service="deployer", cluster="edge")
    event = auditor.entry(
        action="deploy.request",
        target=ResourceRef(kind="Deployment", namespace="payments", name="checkout"),
        outcome=AuditOutcome.DRY_RUN,
        reason="ci: release 1.43",
        details={"images": {"app": "checkout:1.43"}, "replicas": 3},
        request_id="req-7",
        dry_run=True,
    )
    for attempt in (1, 2):  # the second is a redelivery (the ack was lost)
        await reads.on_audit(Delivery(event=event, subject=event.nats_subject(), stream_sequence=1, attempt=attempt))
    other = auditor.entry(
        action="deploy.abort",
        target=ResourceRef(kind="Deployment", name="checkout"),
        outcome=AuditOutcome.EXECUTED,
        reason="stop",
    )
    await reads.on_audit(Delivery(event=other, subject=other.nats_subject(), stream_sequence=2, attempt=1))
    with pytest.raises(SkipError):
        await reads.on_audit(
            Delivery(event=event.model_copy(update={"type": "x.y"}), subject="s", stream_sequence=3, attempt=1)
        )

    t, inbox = store.audit_entries, store.TABLES.inbox
    async with reads.db.engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(select(t).order_by(t.c.seq))).mappings()]
        claims = await conn.scalar(select(func.count()).select_from(inbox).where(inbox.c.consumer == AUDIT_CONSUMER))
    assert claims == 2
    assert [r["event_id"] for r in rows] == [event.id, other.id]
    stored = {k: v for k, v in rows[0].items() if k != "seq"}
    assert stored == {
        "event_id": event.id,
        "time": event.time,
        "service": "deployer",
        "cluster": "edge",
        "namespace": "payments",
        "actor_kind": "service",
        "actor_id": "deployer",
        "action": "deploy.request",
        "target_kind": "Deployment",
        "target_name": "checkout",
        "outcome": "dry_run",
        "reason": "ci: release 1.43",
        "details": {"images": {"app": "checkout:1.43"}, "replicas": 3},
        "request_id": "req-7",
        "correlation_id": event.correlationid,
        "dry_run": True,
    }
    assert rows[1]["namespace"] is None and rows[1]["dry_run"] is False
