"""The healer's intake: fired and resolved alerts, and the deploy outcomes its rollbacks wait for.

A fired alert is recorded (the latest state per fingerprint, so "still firing" is known at execution time),
matched against the policies, and becomes a recovery row whose id is derived from the alert event and the
policy: a redelivered alert finds the same recovery instead of starting another. The alerts that arrive
together are taken in together, in one transaction (`batching.GroupCommit`): under a storm the cost of a
commit, the planning lock and the history read is paid once per batch, not once per alert, and what triage
can decide without the cluster (join an incident, nothing to do, not now) is recorded in that same
transaction. The ladder then walks the rest in the background (`recovering`); the intake never waits for a
verification. A batch whose transaction fails fails every alert in it: each is nak'ed and redelivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import AlertFired, AlertResolved, AuditOutcome
from opsbus.common.store import Database
from opsbus.healer.batching import GroupCommit
from opsbus.healer.domain.incidents import Lead, keys_of
from opsbus.healer.domain.lifecycle import State
from opsbus.healer.domain.planning import Guards
from opsbus.healer.domain.policy import AlertFacts, Policy
from opsbus.healer.domain.triage import TriageInput, triage
from opsbus.healer.grouping import Incidents
from opsbus.healer.opening import SEVERITY_RANK, Opened
from opsbus.healer.policies import PolicyStore
from opsbus.healer.recording import Recorder, alert_state, object_of, recent_attempts, recovery_id_for
from opsbus.healer.recovering import WAITING
from opsbus.healer.store import AlertRow, AttemptRow, DeployOutcomeRow, RecoveryRow, TransitionRow

__all__ = ["SEVERITY_RANK", "Intake"]
log = logging.getLogger(__name__)

# Statements of constant shape, run with a batch's rows as parameters (executemany): compiled once, cached by
# SQLAlchemy, sent as multi-row VALUES. An older event never overwrites a newer state.
_ALERTS = cast("Table", AlertRow.__table__)
_RECOVERIES = cast("Table", RecoveryRow.__table__)
_TRANSITIONS = cast("Table", TransitionRow.__table__)
_ATTEMPTS = cast("Table", AttemptRow.__table__)
_upsert = insert(_ALERTS)
STATE_UPSERT = _upsert.on_conflict_do_update(
    index_elements=[_ALERTS.c.fingerprint],
    set_={c: _upsert.excluded[c] for c in ("firing", "event_id", "event_time", "updated_at")},
    where=_ALERTS.c.event_time <= _upsert.excluded.event_time,
)
OPEN_RECOVERIES = insert(_RECOVERIES).on_conflict_do_nothing(index_elements=["id"]).returning(_RECOVERIES.c.id)
DEPLOY_TERMINAL = {
    "io.opsbus.deploy.succeeded.v1": "succeeded",
    "io.opsbus.deploy.rolledback.v1": "rolledback",
    "io.opsbus.deploy.failed.v1": "failed",
    "io.opsbus.deploy.superseded.v1": "superseded",
    "io.opsbus.deploy.aborted.v1": "aborted",
    "io.opsbus.deploy.skipped.v1": "skipped",
    "io.opsbus.deploy.rollback_failed.v1": "rollback_failed",
}


class Intake:
    def __init__(
        self,
        *,
        db: Database,
        rec: Recorder,
        policies: PolicyStore,
        incidents: Incidents,
        guards: Guards,
        plan_lock: str,
        clock: Callable[[], datetime],
        launch: Callable[[str], Awaitable[None]],
        max_batch: int = 256,
    ) -> None:
        self.db = db
        self.rec = rec
        self.policies = policies
        self.incidents = incidents
        self.guards = guards
        self.plan_lock = plan_lock
        self.clock = clock
        self.launch = launch
        self._fired = GroupCommit(self.take_in, max_batch=max_batch)

    def _states(self, events: Sequence[Envelope], firing: bool) -> list[dict[str, Any]]:
        """The state rows of a batch: the newest event of each fingerprint in it (a row is upserted once)."""
        now = self.clock()
        latest: dict[str, dict[str, Any]] = {}
        for event in events:
            fingerprint, alertname = str(event.data["fingerprint"]), str(event.data["alertname"])
            seen = latest.get(fingerprint)
            if seen is None or seen["event_time"] <= event.time:
                latest[fingerprint] = {
                    "fingerprint": fingerprint,
                    "alertname": alertname,
                    "firing": firing,
                    "event_id": event.id,
                    "event_time": event.time,
                    "updated_at": now,
                }
        return list(latest.values())

    async def on_alert_resolved(self, event: Envelope) -> None:
        event.payload_as(AlertResolved)  # refused before anything is stored when it is not one
        async with self.db.sessions.begin() as session:
            await session.execute(STATE_UPSERT, self._states([event], False))

    async def on_alert_fired(self, event: Envelope) -> None:
        """Taken in with the other alerts that arrive while a batch is written (`batching.GroupCommit`): when
        the batch's transaction fails, this raises and the alert is redelivered."""
        event.payload_as(AlertFired)
        await self._fired.submit(event)

    async def take_in(self, events: Sequence[Envelope]) -> None:
        """One transaction for a batch of fired alerts: their state rows, the audit of those no policy matches,
        and a recovery per matched alert (its id derived from the alert and the policy: a redelivered alert
        finds the one it made). New recoveries are triaged (`domain.triage`) under the planning lock with one
        history and incident read: joined, closed, or deferred right here, with their transitions and audit
        entries; the rest walk their ladder in the background once the batch is committed."""
        now = self.clock()
        entries: list[Envelope] = []
        matched: dict[str, tuple[Envelope, Policy]] = {}
        walk: list[str] = []
        async with self.db.sessions.begin() as session:
            policies = await self.policies.current(session)
            for event in events:
                state = alert_state(event, True)
                policy = policies.match(AlertFacts(state.alertname, state.severity, state.labels, state.namespace))
                if policy is None:
                    reason = f"no remediation policy matches {state.alertname} (policies v{policies.version})"
                    entries.append(self._nomatch(event, reason))
                else:
                    matched.setdefault(recovery_id_for(event.id, policy.name), (event, policy))
            await session.execute(STATE_UPSERT, self._states(events, True))
            if matched:
                existing = await session.execute(
                    select(RecoveryRow.id, RecoveryRow.status).where(RecoveryRow.id.in_(matched))
                )
                for rid, status in existing.all():
                    matched.pop(rid)
                    if State(status) not in WAITING:
                        walk.append(rid)  # a redelivery: resume what its first delivery started
            if matched:
                walk += await self._open(session, matched, policies.version, now, entries)
            await self.rec.emit_many(session, entries)
        if entries:
            self.rec.wake_relay()
        # Committed: the batch's alerts are safe. A walk that cannot start now (another replica holds the lease,
        # the database blinked) is resumed by the orphan sweep; it does not fail the batch's messages.
        outcomes = await asyncio.gather(*(self.launch(r) for r in walk), return_exceptions=True)
        for rid, outcome in zip(walk, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.warning("recovery %s: not walked now (%s); the orphan sweep resumes it", rid, outcome)

    def _nomatch(self, event: Envelope, reason: str) -> Envelope:
        return self.rec.audit_entry(
            event,
            action="recovery.match",
            target=object_of(event),
            outcome=AuditOutcome.SKIPPED,
            reason=reason,
            key=f"{event.id}:nomatch",
        )

    async def _open(
        self,
        session: AsyncSession,
        matched: dict[str, tuple[Envelope, Policy]],
        version: int,
        now: datetime,
        entries: list[Envelope],
    ) -> list[str]:
        """Insert the batch's new recoveries, each triaged; returns those left for the ladder to walk."""
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(self.plan_lock))))
        fingerprints = {str(e.data["fingerprint"]) for e, _ in matched.values()}
        q = select(AlertRow.fingerprint, AlertRow.firing).where(AlertRow.fingerprint.in_(fingerprints))
        firing = {r.fingerprint: r.firing for r in await session.execute(q)}
        states = {rid: alert_state(e, firing.get(str(e.data["fingerprint"]), True)) for rid, (e, _) in matched.items()}
        windows = [w for _, p in matched.values() for w in (p.attempt_window, p.cooldown)]
        horizon = max(*windows, self.guards.rate_limit_window)
        history = await recent_attempts(session, now - timedelta(seconds=horizon))
        keys = sorted({k for st in states.values() for k in keys_of(st)})
        leads = await self.incidents.leads(session, tuple(keys), exclude=None) if keys else []
        opened = [Opened.of(self.rec, rid, e, p, version=version, now=now) for rid, (e, p) in matched.items()]
        for o in opened:
            t = triage(TriageInput(o.rid, states[o.rid], o.policy, history, leads, self.guards, now))
            o.decide(t, now)
            if t.joins is None and t.key is not None:
                leads.append(Lead(o.rid, t.key, o.policy.name, now))
        rows = [o.row for o in opened]
        inserted = set((await session.execute(OPEN_RECOVERIES, rows)).scalars())
        ours = [o for o in opened if o.rid in inserted]  # another replica may have taken in the same alert
        moves = [m for o in ours for m in o.moves]
        if moves:
            await session.execute(insert(_TRANSITIONS), moves)
        attempts = [o.skipped for o in ours if o.skipped is not None]
        if attempts:  # Core executemany of plain rows: an ORM flush fetched back every id it does not need
            await session.execute(insert(_ATTEMPTS), attempts)
        entries += [e for o in ours for e in o.entries]
        return [o.rid for o in ours if o.walks]

    async def close(self) -> None:
        await self._fired.close()

    async def on_deploy_outcome(self, event: Envelope) -> None:
        outcome = DEPLOY_TERMINAL.get(event.type)
        request_id = event.data.get("request_id")
        if outcome is None or not isinstance(request_id, str):
            return
        if outcome == "failed" and event.data.get("rollback_pending"):
            return  # not the end: deploy.rolledback or deploy.rollback_failed follows
        message = event.data.get("message") or event.data.get("reason")
        async with self.db.sessions.begin() as session:
            await session.execute(
                insert(DeployOutcomeRow)
                .values(
                    request_id=request_id,
                    outcome=outcome,
                    message=str(message) if message else None,
                    event_id=event.id,
                    at=event.time,
                )
                .on_conflict_do_nothing(index_elements=[DeployOutcomeRow.request_id])
            )
