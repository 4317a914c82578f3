"""`/v1/sessions`: the console's sessions for admins: who is signed in (and was), with which role and scope, from
which key or identity provider, and ending one. The sign-in history itself (successes and refusals, with the
client's address) is the audit trail's `console.signin` entries (`GET /v1/audit?action=console.signin`).

An admin sees the sessions its own scope covers, as with keys; ending one commits with its audit entry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from opsbus.common.events.payloads.common import ResourceRef
from opsbus.gateway.auth import Admin, Ctx, RequestId
from opsbus.gateway.domain.access import Scope
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.sessions import SessionRecord

router = APIRouter(prefix="/v1/sessions", tags=["session"], responses=PROBLEM_RESPONSES)


class SessionInfo(BaseModel):
    id: str
    kind: Literal["apikey", "user"] = Field(description="Signed in with an API key, or through OIDC.")
    subject: str = Field(description="The key's id or the OIDC subject.")
    key_prefix: str | None
    display_name: str | None
    role: str
    namespaces: list[str]
    clusters: list[str]
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = Field(description="When it was signed out or ended by an admin; null if not.")


class SessionList(BaseModel):
    items: list[SessionInfo]


def _info(r: SessionRecord) -> SessionInfo:
    s = r.session
    return SessionInfo(
        id=s.id,
        kind="apikey" if s.kind == "apikey" else "user",
        subject=s.subject,
        key_prefix=s.key_prefix,
        display_name=s.display_name,
        role=str(s.role),
        namespaces=list(s.namespaces),
        clusters=list(s.clusters),
        created_at=s.created_at,
        expires_at=s.expires_at,
        ended_at=r.ended_at,
    )


@router.get("", summary="Console sessions, newest first (admin)")
async def list_sessions(*, who: Admin, ctx: Ctx, limit: int = Query(default=100, ge=1, le=500)) -> SessionList:
    records = await ctx.sessions.recent(limit)
    visible = [r for r in records if who.scope.covers(Scope.of(r.session.namespaces, r.session.clusters))]
    return SessionList(items=[_info(r) for r in visible])


@router.delete("/{session_id}", summary="End a console session (admin)")
async def end_session(
    *, who: Admin, ctx: Ctx, rid: RequestId, session_id: str = Path(min_length=1, max_length=64)
) -> SessionInfo:
    record = await ctx.sessions.get(session_id)
    if record is None or not who.scope.covers(Scope.of(record.session.namespaces, record.session.clusters)):
        raise ApiProblem(404, f"no session {session_id}", slug="not-found")
    ended = await ctx.sessions.end(
        record.session,
        audit=lambda s: ctx.commands.entry(
            who,
            action="console.session.end",
            target=ResourceRef(kind="ConsoleSession", name=s.id),
            reason=f"ended by an admin (signed in as {s.display_name or s.subject})",
            request_id=rid,
        ),
    )
    if not ended:
        raise ApiProblem(409, f"session {session_id} has already ended", slug="conflict")
    after = await ctx.sessions.get(session_id)
    assert after is not None
    return _info(after)
