"""`GET /v1/events`: past events from the streams, one page at a time by stream sequence.
`GET /v1/events/stream`: Server-Sent Events of bus events matching a subject pattern, resumable with
`Last-Event-ID` (the stream sequence). Both are limited to the caller's namespaces and clusters by the one
rule of `domain.scopes`: an invalid pattern is 400, one naming a cluster or namespace out of scope is 403,
any other is narrowed to the scope (never widened)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from opsbus.gateway.auth import Ctx, LastEventId, Viewer
from opsbus.gateway.domain.access import Principal
from opsbus.gateway.domain.scopes import Grant, PatternError, grant
from opsbus.gateway.history import HistoryQuery
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.streaming import TooManyClientsError

router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)
_PATTERN_HELP = (
    "NATS subject pattern, family first: `alert.>`, `deploy.*.*.payments`, `audit.recorded.prod.*`. "
    "Narrowed to your clusters and namespaces; naming one outside them is 403."
)
_DEFAULT_WINDOW = timedelta(hours=1)


class PastEvent(BaseModel):
    sequence: int = Field(description="The event's sequence in its stream (the SSE `id`).")
    subject: str
    time: datetime = Field(description="When the stream stored it.")
    event: dict[str, Any] | None = Field(description="The CloudEvent; null if the stored message is not one.")


class EventPage(BaseModel):
    events: list[PastEvent]
    next_after: int | None = Field(
        description="The last stream sequence read: pass it as `after` for the next page (or as Last-Event-ID "
        "to /v1/events/stream to follow live from there)."
    )
    more: bool = Field(description="Whether the stream holds more matching events after `next_after`.")


def _granted(who: Principal, pattern: str) -> Grant:
    """What `who` may read through `pattern`: 400 when invalid, 403 (`Denied`) when out of scope."""
    try:
        return grant(pattern, who.scope)
    except PatternError as exc:
        raise ApiProblem(400, str(exc), slug="invalid-pattern") from None


@router.get("/v1/events", summary="Past events of a subject pattern in your namespaces, oldest first, by page")
async def history(
    *,
    who: Viewer,
    ctx: Ctx,
    subject: str = Query(min_length=3, max_length=300, description=_PATTERN_HELP),
    since: Annotated[
        AwareDatetime | None,
        Query(description="Start at the first event stored at or after this time (default: an hour ago)."),
    ] = None,
    after: int | None = Query(
        default=None, ge=0, le=2**63 - 1, description="Start after this stream sequence (the `next_after` of a page)."
    ),
    limit: int = Query(default=100, ge=1, le=1000),
) -> EventPage:
    granted = _granted(who, subject)
    start = since if since is not None or after is not None else datetime.now(UTC) - _DEFAULT_WINDOW
    page = await ctx.history.page(HistoryQuery(granted, after=after, since=start, limit=limit), who)
    return EventPage(
        events=[PastEvent(sequence=e.sequence, subject=e.subject, time=e.time, event=e.event) for e in page.events],
        next_after=page.next_after,
        more=page.more,
    )


@router.get(
    "/v1/events/stream",
    summary="Live events as Server-Sent Events (resumable with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An endless event stream."}},
)
async def stream(
    *,
    who: Viewer,
    ctx: Ctx,
    last_event_id: LastEventId = None,
    pattern: str = Query(min_length=3, max_length=300, description=_PATTERN_HELP),
    after: int | None = Query(default=None, ge=0, description="Resume after this sequence (like Last-Event-ID)."),
) -> StreamingResponse:
    granted = _granted(who, pattern)
    resume = after
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or len(last_event_id.strip()) > 18:
            raise ApiProblem(422, "Last-Event-ID must be a stream sequence number", slug="validation")
        resume = int(last_event_id.strip())
    try:
        ctx.streams.admit()
    except TooManyClientsError as exc:
        raise ApiProblem(503, str(exc), slug="too-many-streams", headers={"Retry-After": "5"}) from None
    return StreamingResponse(
        ctx.streams.stream(granted, who, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
