"""`GET /v1/whoami` and `GET /v1/audit` answered before FastAPI's router, as pure ASGI.

Why: these are the reads a CI/CD system and the console make most, and for them FastAPI's per-request work
cost more than the answer: matching the route, solving its dependency graph, validating the query parameter by
parameter, validating and serialising a response model (and, for the audit page, decoding 20 rows into Python
to encode them again). Profiles and figures: bench/gateway_load.py, docs/benchmarks.md.

What stays the same, by construction, not by copy:

* the routes are still FastAPI's (the OpenAPI document and the console's client do not change); this only
  answers a request the router would have given to them;
* authentication, the rate-limit charge and the role check are the routes' own gates (`auth.CALLER`,
  `auth.VIEWER`), and whatever they or the handler raise is answered by the app's exception handlers, the same
  problem+json;
* the query is validated by a pydantic model made from the route's declared parameters (`query_model`); a
  query that model refuses is handed to FastAPI untouched, which authenticates first and answers its 422 as
  always;
* the scope checks and the page are the route's (`trail.audit_search`, the caller's namespaces and clusters in
  SQL); the page's JSON is built by PostgreSQL (`ReadModel.audit_json`) with the keys and values of
  `trail.AuditPage`;
* it sits inside every middleware: request id, metrics by route template, CORS, the body limit, and FastAPI's
  server span (named after the route, as the router would).

It must never answer what the router would treat differently (another method, a trailing slash, a root path):
those go to FastAPI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from fastapi.telemetry._api import _route_selected  # names the server span after the route, as the router does
from pydantic import BaseModel, ValidationError, create_model
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from opsbus.gateway.auth import CALLER, VIEWER
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.routes import trail
from opsbus.gateway.routes.keys import identity

Answer = Callable[[Request, Any], Awaitable[bytes]]
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class FastRoute:
    route: APIRoute
    query: type[BaseModel] | None  # None: the route takes no query parameters
    answer: Answer  # the JSON body of the 200, from the request and its validated query


def query_model(route: APIRoute) -> type[BaseModel] | None:
    """A model of the query parameters `route` declares (its own and its dependencies'), with their types,
    defaults and constraints: one pydantic call validates what FastAPI validates one parameter at a time."""

    def declared(dependant: Any) -> Any:
        yield from dependant.query_params
        for sub in dependant.dependencies:
            yield from declared(sub)

    fields = {p.alias: (p.field_info.annotation, p.field_info) for p in declared(route.dependant)}
    if not fields:
        return None
    return create_model(f"{route.name}_query", **fields)  # type: ignore[call-overload,no-any-return]


async def whoami(request: Request, _: Any) -> bytes:
    return identity(await CALLER(request)).model_dump_json().encode()


async def audit(request: Request, query: Any) -> bytes:
    who = await VIEWER(request)
    ctx: GatewayContext = request.app.state.ctx
    search = dict(query)
    cursor, limit = search.pop("cursor"), search.pop("limit")
    f = dataclasses.replace(await trail.audit_search(who=who, **search), after=trail.page_cursor(cursor), limit=limit)
    items, after = await ctx.reads.audit_json(f, trail.visibility_of(who))
    cursor_json = b"null" if after is None else b'"%d"' % after
    return b'{"items":' + items.encode() + b',"next_cursor":' + cursor_json + b"}"


ANSWERS: Mapping[str, Answer] = {"/v1/whoami": whoami, "/v1/audit": audit}


def fast_routes(routes: list[Any]) -> dict[str, FastRoute]:
    """The app's `GET` routes that `ANSWERS` answers, by path."""
    found = {
        r.path: FastRoute(r, query_model(r), ANSWERS[r.path])
        for r in routes
        if isinstance(r, APIRoute) and r.path in ANSWERS and r.methods == {"GET"}
    }
    if set(found) != set(ANSWERS):
        raise LookupError(f"no GET route for {sorted(set(ANSWERS) - set(found))}")
    return found


class FastReads:
    """ASGI middleware answering `routes` itself; every other request goes on to `app`."""

    def __init__(self, app: ASGIApp, *, routes: dict[str, FastRoute], handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self.routes = routes
        self.handlers = handlers  # the app's exception handlers (the dict itself: what is added later counts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if fast is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        query = None
        if fast.query is not None:
            try:
                query = fast.query.model_validate(dict(request.query_params))
            except ValidationError:  # FastAPI answers it: 401 first if the caller is not admitted, else its 422
                await self.app(scope, receive, send)
                return
        scope["route"] = fast.route  # the metrics' route template
        _route_selected(scope=scope, path=fast.route.path_format)
        try:
            body = await fast.answer(request, query)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # as it would reach Starlette's ServerErrorMiddleware from the route: 500
            response = await handler(request, exc)
            await response(scope, receive, send)
            return
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _handler(self, exc: Exception) -> Any:
        """The handler Starlette's ExceptionMiddleware would pick: the nearest class of `exc` that has one."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in self.handlers:
                return self.handlers[cls]
        return None
