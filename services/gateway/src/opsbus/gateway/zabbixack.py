"""Acknowledges in Zabbix the problems opsbus healed: a consumer of `recovery.succeeded` and a JSON-RPC client.

Why this is in the gateway (and not a notifier channel): the gateway already holds what the acknowledgement
needs. Its Zabbix receiver made the alert, its incident read model keeps the alert's labels (Zabbix's problem
event id among them) under the chain's correlation id, which `recovery.succeeded` carries, and it knows the
console's URL for the link. The notifier routes alerts to people; it would need its own index of alerts to
find the Zabbix event. The decision (acknowledge or not, what to say, which answers mean "Zabbix refuses") is
the pure `domain/zabbix_ack.py`; this module makes the calls and records them.

Exactly once, as far as Zabbix can tell: a recovery's acknowledgement is a row in `zabbix_acks` (per recovery
and Zabbix event), written with its audit entry after Zabbix answered, and the message carries a marker naming
the recovery. A redelivered event meets the row and stops; one that comes back after a crash between the
call and the commit first reads the problem's history and finds the marker, so it records `found` and sends
nothing. Transport errors (connection, timeout, HTTP 5xx or 429) are retried with backoff, then the event is
redelivered later (TransientError); a JSON-RPC error is Zabbix refusing (permissions, a trigger without manual
close, a bad token): it is recorded, audited, and the event goes to the DLQ with Zabbix's words (PermanentError),
so it can be replayed once the cause is fixed. The token is sent as `Authorization: Bearer` to Zabbix 6.4+
and in the request body to older versions (`apiinfo.version` tells which, once); it is never logged.

It must never touch a problem that did not come from Zabbix through opsbus, nor acknowledge one twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from opsbus.common.audit import Auditor
from opsbus.common.bus import Delivery
from opsbus.common.errors import PermanentError, TransientError
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.common.events.payloads.recovery import RecoverySucceeded
from opsbus.common.store import Database, add, claim
from opsbus.gateway import store
from opsbus.gateway.domain import zabbix_ack
from opsbus.gateway.domain.zabbix_ack import Ack, AckOptions, Incident, Skip, ZabbixApiError
from opsbus.gateway.settings import ZabbixSettings

log = logging.getLogger(__name__)

ACK_CONSUMER = "gateway-zabbix-ack"
_INCIDENT_WAIT_ATTEMPTS = 5  # the incident read model may not have taken the alert in yet


class ZabbixClient:
    """Zabbix's JSON-RPC API with an API token. Transport errors are retried `attempts` times with backoff
    (`sleep` injected), then raise TransientError; Zabbix's refusals raise ZabbixApiError."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        token: SecretStr,
        timeout: float,
        attempts: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._url = url
        self._token = token
        self._timeout = timeout
        self._attempts = attempts
        self._sleep = sleep
        self._ids = itertools.count(1)
        self._bearer: bool | None = None

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """`method` with the token; its result."""
        if self._bearer is None:
            version = zabbix_ack.result(
                await self._post(zabbix_ack.request("apiinfo.version", [], call_id=0, auth=None))
            )
            self._bearer = zabbix_ack.bearer_supported(str(version))
        token = self._token.get_secret_value()
        body = zabbix_ack.request(method, params, call_id=next(self._ids), auth=None if self._bearer else token)
        headers = {"Authorization": f"Bearer {token}"} if self._bearer else {}
        return zabbix_ack.result(await self._post(body, headers))

    async def _post(self, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Any:
        problem = ""
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            try:
                answer = await self._http.post(
                    self._url,
                    json=body,
                    headers={"Content-Type": "application/json-rpc", **(headers or {})},
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__} calling {body['method']}"
                continue
            if answer.status_code >= 500 or answer.status_code == 429:
                problem = f"HTTP {answer.status_code} from {body['method']}"
                continue
            if answer.status_code != 200:
                raise ZabbixApiError(answer.status_code, f"HTTP {answer.status_code}", answer.text[:200])
            try:
                return answer.json()
            except ValueError:
                raise ZabbixApiError(0, "answer is not JSON", answer.text[:200]) from None
        raise TransientError(f"Zabbix API unreachable after {self._attempts} attempts: {problem}", delay=5.0)


class ZabbixAcker:
    def __init__(
        self,
        db: Database,
        client: ZabbixClient,
        *,
        options: AckOptions,
        cluster: str,
        clock: Callable[[], datetime],
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.client = client
        self.options = options
        self.clock = clock
        self.on_outbox = on_outbox
        self._auditor = Auditor(service="gateway", cluster=cluster)

    async def on_recovery(self, delivery: Delivery) -> None:
        """Consumer handler of `recovery.succeeded`."""
        event = delivery.event
        recovery = event.payload()
        if not isinstance(recovery, RecoverySucceeded):
            return
        incident = await self._incident(event.correlationid)
        if incident is None and delivery.attempt < _INCIDENT_WAIT_ATTEMPTS:
            raise TransientError(f"no incident {event.correlationid} yet", delay=2.0)
        decision = zabbix_ack.plan(recovery, incident, self.options)
        if isinstance(decision, Skip):
            log.debug("recovery %s: no Zabbix acknowledgement: %s", recovery.recovery_id, decision.reason)
            return
        assert incident is not None
        if await self._done(recovery.recovery_id, decision.event_id):
            return
        try:
            state, detail = await self._acknowledge(decision)
        except ZabbixApiError as exc:
            await self._record(delivery, recovery, incident, decision, state="failed", detail=str(exc))
            raise PermanentError(f"Zabbix refused to acknowledge event {decision.event_id}: {exc}") from exc
        await self._record(delivery, recovery, incident, decision, state=state, detail=detail)

    async def _acknowledge(self, ack: Ack) -> tuple[str, str]:
        history = await self.client.call("event.get", zabbix_ack.find_params(ack))
        if zabbix_ack.already_acknowledged(history, ack):
            return "found", ack.message
        await self.client.call("event.acknowledge", zabbix_ack.acknowledge_params(ack))
        return "acknowledged", ack.message

    async def _incident(self, incident_id: str | None) -> Incident | None:
        if not incident_id:
            return None
        t = store.incidents
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(select(t.c.id, t.c.source, t.c.labels, t.c.alertname).where(t.c.id == incident_id))
            ).first()
        if row is None:
            return None
        return Incident(id=row.id, source=row.source, labels=dict(row.labels or {}), alertname=row.alertname)

    async def _done(self, recovery_id: str, zabbix_event_id: str) -> bool:
        t = store.zabbix_acks
        async with self.db.engine.connect() as conn:
            state = (
                await conn.execute(
                    select(t.c.state).where(t.c.recovery_id == recovery_id, t.c.zabbix_event_id == zabbix_event_id)
                )
            ).scalar()
        return state in ("acknowledged", "found")

    async def _record(
        self, delivery: Delivery, recovery: RecoverySucceeded, incident: Incident, ack: Ack, *, state: str, detail: str
    ) -> None:
        """The row, the inbox claim and the audit entry, in one transaction."""
        now = self.clock()
        t = store.zabbix_acks
        values = {
            "recovery_id": recovery.recovery_id,
            "zabbix_event_id": ack.event_id,
            "event_id": delivery.event.id,
            "incident_id": incident.id,
            "state": state,
            "detail": detail,
            "updated_at": now,
        }
        outcome = AuditOutcome.FAILED if state == "failed" else AuditOutcome.EXECUTED
        reason = {
            "acknowledged": f"acknowledged Zabbix event {ack.event_id}: {ack.message}",
            "found": f"Zabbix event {ack.event_id} already carries this acknowledgement; not sent again",
            "failed": f"Zabbix refused to acknowledge event {ack.event_id}: {detail}",
        }[state]
        entry = self._auditor.entry(
            action="zabbix.acknowledge",
            target=ResourceRef(kind="ZabbixEvent", name=ack.event_id),
            outcome=outcome,
            reason=reason,
            details={"incident": incident.id, "recovery_id": recovery.recovery_id, "flags": ack.action, "state": state},
            cause=delivery.event,
            idempotency_key=f"zabbix-ack:{recovery.recovery_id}:{ack.event_id}:{state}",
            time=now,
        )
        async with self.db.sessions.begin() as session:
            await claim(session, store.TABLES.inbox, ACK_CONSUMER, delivery.event.id)
            await session.execute(
                pg_insert(t)
                .values(**values)
                .on_conflict_do_update(
                    index_elements=[t.c.recovery_id, t.c.zabbix_event_id],
                    set_={k: values[k] for k in ("event_id", "state", "detail", "updated_at")},
                )
            )
            await add(session, store.TABLES.outbox, entry)
        self.on_outbox()
        log.info("recovery %s: Zabbix event %s %s", recovery.recovery_id, ack.event_id, state)


def acker_from_settings(
    settings: ZabbixSettings,
    db: Database,
    http: httpx.AsyncClient,
    *,
    incident_url: str | None,
    cluster: str,
    clock: Callable[[], datetime],
    on_outbox: Callable[[], None],
) -> ZabbixAcker | None:
    """The acknowledger when Zabbix's API URL and token are configured; None (no acknowledgements) otherwise."""
    if not settings.api_url or settings.api_token is None:
        return None
    client = ZabbixClient(
        http,
        url=settings.api_url,
        token=settings.api_token,
        timeout=settings.timeout_seconds,
        attempts=settings.attempts,
    )
    options = AckOptions(acknowledge=settings.acknowledge, close=settings.close, incident_url=incident_url)
    return ZabbixAcker(db, client, options=options, cluster=cluster, clock=clock, on_outbox=on_outbox)


__all__ = ["ACK_CONSUMER", "ZabbixAcker", "ZabbixClient", "acker_from_settings"]
