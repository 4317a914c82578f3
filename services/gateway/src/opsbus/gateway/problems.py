"""RFC 9457 problem details (`application/problem+json`) for every error the gateway answers.

Handlers raise `ApiProblem` (or a typed error that maps to one); nothing else decides a status code. Bad input
is always 4xx: request validation is 422 with an `errors` list of JSON pointers (RFC 6901) into the body or
the names of the parameters at fault; malformed JSON is 400. A service that does not answer is 503 with
Retry-After. An unexpected exception is 500 with no internals in the body (the request id finds the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsbus.common.errors import ConflictError, NotFoundError, PermanentError
from opsbus.common.rpc import RpcError, ServiceUnavailableError
from opsbus.gateway.domain.access import Denied
from opsbus.gateway.middleware import BodyTooLargeError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


class ProblemError(BaseModel):
    """One field at fault: `pointer` into the JSON body, or `parameter` naming a query/path/header parameter."""

    detail: str
    pointer: str | None = None
    parameter: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:opsbus:problem:validation",
                    "title": "Unprocessable content",
                    "status": 422,
                    "detail": "the request is not valid",
                    "instance": "/v1/deployments",
                    "request_id": "0195b2f0-9e21-7c4b-8a11-5d2e6f7a8b90",
                    "errors": [{"pointer": "#/workload/name", "detail": "String should match pattern"}],
                }
            ]
        },
    )

    type: str = Field(default="about:blank", description="URI reference identifying the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code.")
    detail: str | None = Field(default=None, description="Explanation of this occurrence.")
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = Field(default=None, description="Request id (also in the X-Request-Id header).")
    errors: list[ProblemError] | None = Field(default=None, description="Fields at fault (validation).")


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        errors: Sequence[ProblemError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}


def problem_response(
    request: Request,
    status: int,
    detail: str | None,
    *,
    slug: str | None = None,
    errors: Sequence[ProblemError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"urn:opsbus:problem:{slug}" if slug else "about:blank",
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        errors=list(errors) if errors is not None else None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def pointer(loc: Sequence[int | str]) -> str:
    """RFC 6901 pointer (as a URI fragment) for a location inside the body."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "#/" + "/".join(parts) if parts else "#"


def validation_errors(errors: Sequence[Any]) -> tuple[int, list[ProblemError]]:
    """Status (400 for malformed JSON, else 422) and the fields at fault of a FastAPI validation error."""
    status = 422
    out: list[ProblemError] = []
    for e in errors:
        loc = list(e.get("loc", ()))
        where = loc[0] if loc else "body"
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid":
            status = 400
            out.append(ProblemError(detail=f"malformed JSON: {e.get('ctx', {}).get('error', msg)}", pointer="#"))
        elif where == "body":
            out.append(ProblemError(detail=msg, pointer=pointer(loc[1:])))
        else:
            out.append(ProblemError(detail=msg, parameter=".".join(str(p) for p in loc[1:]) or str(where)))
    return status, out


def rpc_problem(exc: RpcError) -> ApiProblem:
    """A service's error answer as the gateway's: its 4xx pass through, a 5xx is a bad gateway."""
    if exc.code in (400, 422):
        return ApiProblem(422, exc.description, slug="refused")
    if exc.code in (404, 409):
        return ApiProblem(exc.code, exc.description, slug="not-found" if exc.code == 404 else "conflict")
    return ApiProblem(502, "an opsbus service failed to answer this request", slug="upstream-error")


def install(app: FastAPI, *, retry_after: int) -> None:
    async def api_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(request, exc.status, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, BodyTooLargeError):
            return problem_response(request, 413, "the request body is too large", slug="too-large")
        return problem_response(request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        status, errors = validation_errors(exc.errors())
        return problem_response(request, status, "the request is not valid", slug="validation", errors=errors)

    async def denied(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Denied)
        if exc.hidden:
            return problem_response(request, 404, "no such object (or not visible to you)", slug="not-found")
        return problem_response(request, 403, exc.reason, slug="forbidden")

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            request,
            503,
            f"a service behind the gateway did not answer: {exc}",
            slug="service-unavailable",
            headers={"Retry-After": str(retry_after)},
        )

    async def rpc_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RpcError)
        return await api_problem(request, rpc_problem(exc))

    async def typed(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            return problem_response(request, 404, str(exc), slug="not-found")
        if isinstance(exc, ConflictError):
            return problem_response(request, 409, str(exc), slug="conflict")
        return problem_response(request, 422, str(exc), slug="refused")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # answered outside the request-id middleware (Starlette's outermost layer): set its header here
        rid = getattr(request.state, "request_id", None)
        headers = {"X-Request-Id": rid} if rid else None
        return problem_response(request, 500, "internal error; quote the request id when reporting it", headers=headers)

    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Denied, denied)
    app.add_exception_handler(ServiceUnavailableError, unavailable)
    app.add_exception_handler(RpcError, rpc_error)
    app.add_exception_handler(PermanentError, typed)
    app.add_exception_handler(Exception, unexpected)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": _TITLES[status]}
    for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
