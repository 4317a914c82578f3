"""`/healthz` (the process is alive), `/readyz` (NATS and PostgreSQL answer), `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from opsbus.common.telemetry.metrics import render
from opsbus.gateway.auth import Ctx

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "opsbus-gateway"}


@router.get(
    "/readyz",
    summary="Readiness: NATS and PostgreSQL answer",
    responses={503: {"description": "A dependency is failing; the body names it."}},
)
async def readyz(*, ctx: Ctx) -> JSONResponse:
    failures = await ctx.readiness()
    if failures:
        return JSONResponse({"status": "unavailable", "failing": failures}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(*, ctx: Ctx) -> Response:
    body, content_type = render(ctx.registry)
    return Response(body, media_type=content_type)
