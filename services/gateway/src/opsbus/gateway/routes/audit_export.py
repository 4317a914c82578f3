"""`GET /v1/audit/export`: the audit search as CSV, streamed.

The same filters and the same scope rules as `GET /v1/audit`; the rows are read by keyset in batches of
`_BATCH` and written as they come, so an export of a million rows holds one batch in memory, never the whole
answer, and the first bytes leave before the last row is read. A cell that a spreadsheet would run as a
formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'` (OWASP's advice
on CSV injection): actors, targets and reasons come from callers, and this file is opened in spreadsheets.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from opsbus.gateway.auth import Ctx, Viewer
from opsbus.gateway.problems import PROBLEM_RESPONSES
from opsbus.gateway.readmodel import AuditFilter, ReadModel, Visibility
from opsbus.gateway.routes.trail import AuditSearch, visibility_of

router = APIRouter(responses=PROBLEM_RESPONSES)
_BATCH = 1000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "time",
    "id",
    "service",
    "cluster",
    "namespace",
    "actor_kind",
    "actor_id",
    "action",
    "target_kind",
    "target_name",
    "outcome",
    "dry_run",
    "reason",
    "request_id",
    "correlation_id",
    "details",
)


def cell(value: Any) -> str:
    """One CSV cell: text a spreadsheet shows and never evaluates."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    text = json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, dict) else str(value)
    return f"'{text}" if text.startswith(_FORMULA) else text


def csv_lines(rows: Iterable[dict[str, Any]], *, header: bool) -> str:
    """Rows of `audit_entries` as CSV text (RFC 4180: CRLF, quoted where needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([cell(v) for v in (r["time"], r["event_id"], *(r[c] for c in COLUMNS[2:]))])
    return out.getvalue()


async def export(reads: ReadModel, f: AuditFilter, visibility: Visibility, rows: int) -> AsyncIterator[bytes]:
    """At most `rows` entries, newest first, one keyset batch after another."""
    yield csv_lines([], header=True).encode()
    left = rows
    after = None
    while left > 0:
        batch, after = await reads.audit(dataclasses.replace(f, after=after, limit=min(_BATCH, left)), visibility)
        if batch:
            yield csv_lines(batch, header=False).encode()
        left -= len(batch)
        if after is None:
            return


@router.get(
    "/v1/audit/export",
    tags=["audit"],
    summary="The audit search as CSV (streamed), newest first",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "RFC 4180 CSV with a header row."}},
)
async def audit_export(
    *,
    who: Viewer,
    ctx: Ctx,
    search: AuditSearch,
    rows: int = Query(default=100_000, ge=1, le=1_000_000, description="At most this many entries."),
) -> StreamingResponse:
    return StreamingResponse(
        export(ctx.reads, search, visibility_of(who), rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="opsbus-audit.csv"', "Cache-Control": "no-store"},
    )
