"""Request-reply between services on the NATS services framework (`nats.micro`).

Endpoints are named `opsbus.svc.<service>.<operation>`; every replica of a service joins the same queue
group, so a request is answered once, and the framework's discovery and stats (`$SRV.PING`, `$SRV.INFO`,
`$SRV.STATS`) come for free. Requests and responses are pydantic models from `opsbus.common`.

Errors cross the wire as the framework's error headers with an HTTP-like code, so the gateway can turn
them into problem+json without guessing: 400 invalid request, 404 not found, 409 conflict, 422 refused by
a rule, 503 try again later, 500 a bug. `call()` raises them back as `RpcError` (and `TransientError` for
503 and timeouts), so callers handle types, not strings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats.errors
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER, Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from pydantic import BaseModel, ValidationError

from opsbus.common.bus.propagation import context_from, current_trace_headers
from opsbus.common.errors import ConflictError, NotFoundError, OpsbusError, PermanentError, TransientError

log = logging.getLogger(__name__)

Req = TypeVar("Req", bound=BaseModel)
Resp = TypeVar("Resp", bound=BaseModel)

SUBJECT_PREFIX = "opsbus.svc"


def endpoint_subject(service: str, operation: str) -> str:
    return f"{SUBJECT_PREFIX}.{service}.{operation}"


class RpcError(OpsbusError):
    """An endpoint answered with an error."""

    def __init__(self, code: int, description: str, *, service: str, operation: str) -> None:
        super().__init__(f"{service}.{operation} answered {code}: {description}")
        self.code = code
        self.description = description


class ServiceUnavailableError(TransientError):
    """No replica answered in time (none running, or all busy)."""


@dataclass(frozen=True)
class Endpoint(Generic[Req, Resp]):
    """One operation: its request and response models and the coroutine that answers it."""

    operation: str
    request: type[Req]
    response: type[Resp]
    handler: Callable[[Req], Awaitable[Resp]]
    description: str = ""


def _code_for(exc: Exception) -> int:
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, PermanentError):
        return 422
    if isinstance(exc, TransientError):
        return 503
    return 500


async def serve(
    nc: Client,
    service: str,
    version: str,
    endpoints: Sequence[Endpoint[Any, Any]],
    *,
    description: str = "",
    tracer: Tracer | None = None,
) -> Service:
    """Register `endpoints` as the `opsbus-<service>` micro service; stop it with `await svc.stop()`."""
    tracer = tracer or trace.get_tracer("opsbus.rpc")
    svc = await add_service(
        nc,
        ServiceConfig(name=f"opsbus-{service}", version=version, description=description or None),
    )
    for endpoint in endpoints:
        await svc.add_endpoint(
            EndpointConfig(
                name=endpoint.operation,
                subject=endpoint_subject(service, endpoint.operation),
                handler=_adapt(service, endpoint, tracer),
                metadata={"description": endpoint.description} if endpoint.description else None,
            )
        )
    await nc.flush()  # the subscriptions reach the server before we report the endpoints as served
    return svc


def _adapt(service: str, endpoint: Endpoint[Any, Any], tracer: Tracer) -> Callable[[Request], Awaitable[None]]:
    subject = endpoint_subject(service, endpoint.operation)

    async def handle(request: Request) -> None:
        headers = request.headers or {}
        with tracer.start_as_current_span(
            subject,
            context=context_from(headers, None, None),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "nats", "rpc.service": f"opsbus-{service}", "rpc.method": endpoint.operation},
        ) as span:
            try:
                parsed = endpoint.request.model_validate_json(request.data or b"{}")
                answer = await endpoint.handler(parsed)
            except Exception as exc:
                code = _code_for(exc)
                text = _describe(exc)
                span.set_status(Status(StatusCode.ERROR, text))
                span.set_attribute("rpc.response.status_code", code)
                if code == 500:
                    log.exception("%s failed", subject)
                await request.respond_error(str(code), text)
                return
            await request.respond(answer.model_dump_json().encode(), headers={"Content-Type": "application/json"})

    return handle


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False)
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}" for e in errors[:5]]
        return "invalid request: " + "; ".join(parts)
    if isinstance(exc, OpsbusError):
        return str(exc)
    return "internal error (see the service's log)"


async def call(
    nc: Client,
    service: str,
    operation: str,
    request: BaseModel,
    response: type[Resp],
    *,
    timeout: float = 5.0,
) -> Resp:
    """Ask `service` to run `operation`; returns the decoded response or raises a typed error."""
    subject = endpoint_subject(service, operation)
    body = request.model_dump_json().encode()
    headers = current_trace_headers() or None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.02
    while True:
        # "No responders" is retried within the timeout: during a rolling restart, or just after an endpoint
        # subscribed, there can be a moment when no replica's interest is registered.
        remaining = deadline - loop.time()
        try:
            reply = await nc.request(subject, body, timeout=max(remaining, 0.001), headers=headers)
            break
        except nats.errors.NoRespondersError as exc:
            if loop.time() + pause >= deadline:
                raise ServiceUnavailableError(f"{subject}: no replica answered within {timeout}s") from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        except nats.errors.TimeoutError as exc:
            raise ServiceUnavailableError(f"{subject}: no answer within {timeout}s") from exc
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        code = int(headers[ERROR_CODE_HEADER])
        description = headers.get(ERROR_HEADER, "")
        if code == 503:
            raise ServiceUnavailableError(f"{subject}: {description}")
        raise RpcError(code, description, service=service, operation=operation)
    try:
        return response.model_validate_json(reply.data)
    except ValidationError as exc:
        raise PermanentError(f"{subject} answered with an invalid {response.__name__}: {exc}") from exc
