"""The analyzer's diagnoses as the healer keeps them: the latest top cause per incident, for conditioned steps.

`diagnosis.made` and `diagnosis.revised` are stored by incident (the analyzer names an incident by its first
alert's event id) with the fingerprints of its alerts; a later revision replaces an earlier one, never the
reverse (redeliveries and out-of-order revisions are harmless). At planning time the healer's incident finds
its diagnosis by its lead alert's event id or by any alert it shares with the analyzer's incident (the two
group alerts independently), and hands the planner the newest as plain data: the planner never fetches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import CauseKind, DiagnosisMade, DiagnosisRevised
from opsbus.common.store import Database
from opsbus.healer.domain.conditions import TopCause
from opsbus.healer.store import DiagnosisRow


class Diagnoses:
    def __init__(self, *, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def on_diagnosis(self, event: Envelope) -> None:
        """Keep the diagnosis when it is newer (a higher revision) than the one stored for its incident."""
        diagnosis: DiagnosisMade | DiagnosisRevised
        if event.type == DiagnosisMade.event_type:
            diagnosis = event.payload_as(DiagnosisMade)
        elif event.type == DiagnosisRevised.event_type:
            diagnosis = event.payload_as(DiagnosisRevised)
        else:
            return
        top = diagnosis.top()
        values = {
            "alerts": list(diagnosis.incident.alerts),
            "revision": diagnosis.revision,
            "cause": top.kind.value if top else None,
            "confidence": top.confidence if top else None,
            "summary": top.summary if top else None,
            "suggested_action": top.suggested_action.value if top else None,
            "event_id": event.id,
            "diagnosed_at": diagnosis.diagnosed_at,
            "received_at": self.clock(),
        }
        stmt = insert(DiagnosisRow).values(incident_id=diagnosis.incident.incident_id, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[DiagnosisRow.incident_id],
            set_=values,
            where=DiagnosisRow.revision < diagnosis.revision,
        )
        async with self.db.sessions.begin() as session:
            await session.execute(stmt)


async def top_cause(session: AsyncSession, incident_id: str, fingerprints: Sequence[str]) -> TopCause | None:
    """The newest diagnosis of the incident led by the alert event `incident_id` or sharing one of its alerts."""
    where = DiagnosisRow.incident_id == incident_id
    if fingerprints:
        where = or_(where, DiagnosisRow.alerts.overlap(list(fingerprints)))
    q = select(DiagnosisRow).where(where).order_by(DiagnosisRow.diagnosed_at.desc()).limit(1)
    row = (await session.execute(q)).scalar_one_or_none()
    if row is None:
        return None
    return TopCause(
        incident_id=row.incident_id,
        revision=row.revision,
        kind=CauseKind(row.cause) if row.cause else None,
        confidence=row.confidence or 0.0,
        summary=row.summary or "",
    )
