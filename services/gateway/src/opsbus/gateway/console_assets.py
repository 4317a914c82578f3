"""The web console, served by the gateway at `/` on the API's origin (no CORS, cookies stay SameSite=Strict).

`make console` builds `console/` (Vite) into `console/` inside this package, so the wheel and the image carry
it and running opsbus needs no Node. Here:

* `/assets/<hashed file>`: cached for a year, immutable (the name changes whenever the content does);
* any other GET outside the API (`/incidents/42`, a bookmarked client route) is `index.html`, never cached,
  so a new release is picked up on the next load;
* every console response carries strict security headers: a CSP with no inline script or style and
  `frame-ancestors 'none'`, nosniff, no referrer, same-origin opener;
* without a build, `/` says so (404, "console not built: run make console") instead of failing obscurely.

The API (`/v1/...`, `/healthz`, `/readyz`, `/metrics`) never falls through to the console: an unknown API path
stays a problem+json 404.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

PACKAGED = Path(__file__).parent / "console"
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
API_PREFIXES = ("/v1/", "/healthz", "/readyz", "/metrics")
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>opsbus console not built</title>
</head><body><main><h1>console not built: run make console</h1><p>The API is at <a href="/v1/docs">/v1/docs</a>.
</p></main></body></html>"""


def _secured(response: Response, cache: str) -> Response:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = cache
    return response


class ConsoleAssets:
    """Answers the console's paths from `root` (a Vite build: index.html and assets/)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.assets = self.root / "assets"

    @property
    def built(self) -> bool:
        return (self.root / "index.html").is_file()

    async def asset(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        path = (self.assets / name).resolve()
        if not path.is_relative_to(self.assets) or not path.is_file():
            return _secured(Response("no such asset", status_code=404, media_type="text/plain"), NO_CACHE)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return _secured(FileResponse(path, media_type=media_type), IMMUTABLE)

    async def page(self, request: Request) -> Response:
        if not self.built:
            return _secured(HTMLResponse(NOT_BUILT, status_code=404), NO_CACHE)
        return _secured(FileResponse(self.root / "index.html", media_type="text/html"), NO_CACHE)


class _ConsoleRoute(Route):
    """A console route that never claims an API path (an unknown `/v1/...` stays the API's problem+json 404)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if str(scope.get("path", "")).startswith(API_PREFIXES):
            return Match.NONE, {}
        return super().matches(scope)


def console_routes(root: str | None) -> list[BaseRoute]:
    """The console's routes, to be placed after every API route."""
    console = ConsoleAssets(Path(root) if root else PACKAGED)
    return [
        _ConsoleRoute("/assets/{name:path}", console.asset, methods=["GET", "HEAD"], include_in_schema=False),
        _ConsoleRoute("/{path:path}", console.page, methods=["GET", "HEAD"], include_in_schema=False),
    ]
