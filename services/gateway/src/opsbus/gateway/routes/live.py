"""`GET /v1/live`: one Server-Sent Events stream of what the console shows live (alerts, recoveries,
notifications), so a browser tab needs one connection, not one per family.

Each family is its own JetStream stream with its own sequences, so the SSE `id:` is a cursor over all of
them (`alert=12;recovery=40;notify=3`). The stream opens with an `event: ready` frame whose id names every
family's last sequence at that moment, so a reconnect (`Last-Event-ID`, which browsers send by themselves)
resumes every family where the tab left it, even families that had no event yet. Each family is read through
`EventStreams` with the caller's grant (`domain.scopes`: filtered server-side to the caller's namespaces and
clusters and checked again per message), so this adds no rule of its own about who sees what.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from opsbus.gateway.auth import Ctx, LastEventId, Viewer
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain.access import Principal
from opsbus.gateway.domain.scopes import Grant, grant
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.streaming import TooManyClientsError

router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)
FAMILIES = ("alert", "recovery", "notify")
_CURSOR = re.compile(r"^(?:[a-z]+=\d{1,18})(?:;[a-z]+=\d{1,18})*$")

Cursor = dict[str, int]


def parse_cursor(text: str | None) -> Cursor:
    """The families' sequences of a Last-Event-ID this endpoint sent (422 for anything else)."""
    if text is None or not text.strip():
        return {}
    if not _CURSOR.match(text.strip()):
        raise ApiProblem(422, "Last-Event-ID is not a cursor of /v1/live", slug="validation")
    pairs = (part.split("=") for part in text.strip().split(";"))
    return {family: int(seq) for family, seq in pairs if family in FAMILIES}


def format_cursor(cursor: Cursor) -> bytes:
    return ";".join(f"{family}={cursor[family]}" for family in FAMILIES if family in cursor).encode()


async def _start(ctx: GatewayContext, grants: dict[str, Grant], resume: Cursor) -> Cursor:
    """Where each family starts: the resumed sequence, else the stream's last sequence now."""
    cursor = dict(resume)
    for family, granted in grants.items():
        if family not in cursor:
            info = await ctx.streams.js.stream_info(granted.stream)
            cursor[family] = int(info.state.last_seq)
    return cursor


async def merged(ctx: GatewayContext, grants: dict[str, Grant], who: Principal, resume: Cursor) -> AsyncIterator[bytes]:
    """The families' frames as one stream, each event's id the cursor after it."""
    cursor = await _start(ctx, grants, resume)
    frames: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue(maxsize=ctx.streams.options.queue)

    async def pump(family: str, granted: Grant) -> None:
        try:
            async for chunk in ctx.streams.stream(granted, who, cursor[family]):
                await frames.put((family, chunk))
        finally:
            await frames.put((family, None))

    tasks = [asyncio.create_task(pump(f, g), name=f"live:{f}") for f, g in grants.items()]
    try:
        yield b"retry: 2000\nid: " + format_cursor(cursor) + b"\nevent: ready\ndata: {}\n\n"
        while True:
            family, chunk = await frames.get()
            if chunk is None:
                return  # a family's reader ended (dropped or failed): the client reconnects with its cursor
            if chunk.startswith(b"id: "):
                head, _, rest = chunk.partition(b"\n")
                cursor[family] = int(head[4:])
                yield b"id: " + format_cursor(cursor) + b"\n" + rest
            elif chunk.startswith(b"event: dropped"):
                yield chunk
                return
            elif chunk.startswith(b": heartbeat") and family == FAMILIES[0]:
                yield chunk
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@router.get(
    "/v1/live",
    summary="The console's live stream: alerts, recoveries and notifications in your namespaces (SSE)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An endless event stream."}},
)
async def live(
    *,
    who: Viewer,
    ctx: Ctx,
    last_event_id: LastEventId = None,
    cursor: str | None = Query(
        default=None, max_length=200, description="Resume from this cursor (an SSE id), like Last-Event-ID."
    ),
) -> StreamingResponse:
    resume = parse_cursor(last_event_id or cursor)
    grants = {family: grant(f"{family}.>", who.scope) for family in FAMILIES}
    try:
        for _ in FAMILIES:
            ctx.streams.admit()
    except TooManyClientsError as exc:
        raise ApiProblem(503, str(exc), slug="too-many-streams", headers={"Retry-After": "5"}) from None
    return StreamingResponse(
        merged(ctx, grants, who, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
