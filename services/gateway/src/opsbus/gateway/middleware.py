"""ASGI middleware every request passes: a request id, the body size limit, HTTP metrics, and (when the gateway
does not record spans itself) the caller's `traceparent` made current, so events the request publishes stay in
the caller's trace.

Pure ASGI (no BaseHTTPMiddleware) so streaming responses (Server-Sent Events) are not buffered and a body
larger than the limit is refused while it arrives, not after it was read into memory.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLargeError(Exception):
    pass


def _problem(status: int, title: str, detail: str, request_id: str, path: str) -> tuple[bytes, list[Any]]:
    problem = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": path}
    body = json.dumps({**problem, "request_id": request_id}).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return body, headers


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, max_body: int, registry: CollectorRegistry, carry_trace: bool = False) -> None:
        self.app = app
        self.max_body = max_body
        self.carry_trace = carry_trace
        self.requests = Counter(
            "opsbus_gateway_http_requests_total",
            "HTTP requests answered by the gateway, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "opsbus_gateway_http_request_duration_seconds",
            "Time to the response headers, by route template and method.",
            ["route", "method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

        # `labels()` hashes and validates its arguments on every call; a route's children are looked up once
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _observe(self, template: str, method: str, status: int, seconds: float) -> None:
        key = (template, method, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 10_000:  # templates and methods are bounded; keep it so whatever comes
                self._children.clear()
            children = self.duration.labels(template, method), self.requests.labels(template, method, str(status))
            self._children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID.encode(), b"").decode("latin-1")
        request_id = given if _VALID_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500, "sent": False}
        path = scope.get("path", "")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["sent"] = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID.encode(), request_id.encode())]
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                self._observe(template, scope["method"], message["status"], time.perf_counter() - started)
            await send(message)

        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                too_big = False
            if too_big:
                await self._refuse(send_wrapper, request_id, path)
                return

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLargeError
            return message

        token = self._adopt_trace(headers) if self.carry_trace else None
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLargeError:
            if not status_holder["sent"]:
                await self._refuse(send_wrapper, request_id, path)
        finally:
            if token is not None:
                otel_context.detach(token)

    @staticmethod
    def _adopt_trace(headers: dict[bytes, bytes]) -> Token[Context] | None:
        parent = headers.get(b"traceparent")
        if parent is None:
            return None
        carrier = {"traceparent": parent.decode("latin-1")}
        if state := headers.get(b"tracestate"):
            carrier["tracestate"] = state.decode("latin-1")
        return otel_context.attach(propagate.extract(carrier))

    async def _refuse(self, send: Send, request_id: str, path: str) -> None:
        body, headers = _problem(
            413, "Content too large", f"the request body is larger than {self.max_body} bytes", request_id, path
        )
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
