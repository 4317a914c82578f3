"""`GET /v1/events/stream`: Server-Sent Events of bus events matching a subject pattern, limited to the
caller's namespaces and clusters, resumable with `Last-Event-ID` (the stream sequence)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from opsbus.gateway.auth import Ctx, LastEventId, Viewer
from opsbus.gateway.domain.access import Denied
from opsbus.gateway.domain.streams import PatternError, subscription
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.streaming import TooManyClientsError

router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)


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
    pattern: str = Query(
        min_length=3,
        max_length=300,
        description="NATS subject pattern, family first: `alert.>`, `deploy.*.*.payments`, `audit.recorded.prod.*`.",
    ),
    after: int | None = Query(default=None, ge=0, description="Resume after this sequence (like Last-Event-ID)."),
) -> StreamingResponse:
    try:
        sub = subscription(pattern)
    except PatternError as exc:
        raise ApiProblem(422, str(exc), slug="validation") from None
    tokens = pattern.split(".")
    if len(tokens) == 4 and tokens[3] not in {"*", ">"} and not who.scope.covers_namespace(tokens[3]):
        raise Denied(f"not allowed on namespace {tokens[3]}")
    if len(tokens) >= 3 and tokens[2] not in {"*", ">"} and not who.scope.covers_cluster(tokens[2]):
        raise Denied(f"not allowed in cluster {tokens[2]}")
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
        ctx.streams.stream(sub, who, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
