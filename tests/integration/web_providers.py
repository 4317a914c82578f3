"""Stand-ins for Opsgenie (Alert API v2), Telegram (Bot API), Discord (webhooks), Google Chat (incoming webhooks)
and Webex (messages) on 127.0.0.1. Each checks the credential where the provider has it (GenieKey header, bot token
in the path, webhook token, key and token in the query, Bearer token), the body's required fields and size limits,
and answers as the provider does: success, its rate limit (`script`), or its refusal."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opsbus.common.testing.servers import free_port
from tests.integration.chat_providers import serving

OPSGENIE_KEY = "opsgenie-KEY-secret-0123456789"
TELEGRAM_TOKEN = "123456789:telegramTOKENsecret0123456789"
DISCORD_TOKEN = "discordTOKENsecret0123456789"
GCHAT_TOKEN = "gchatTOKENsecret0123456789"
WEBEX_TOKEN = "webexTOKENsecret0123456789"
SECRETS = (OPSGENIE_KEY, TELEGRAM_TOKEN, DISCORD_TOKEN, GCHAT_TOKEN, WEBEX_TOKEN)
PROVIDERS = ["opsgenie", "telegram", "discord", "googlechat", "webex"]


@dataclass
class Hit:
    provider: str
    path: str
    body: dict[str, Any]
    at: float


class _Tags(HTMLParser):
    """Telegram's HTML: only b, i, a, code, pre; every tag closed."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.bad = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.bad |= tag not in {"b", "i", "a", "code", "pre"}
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.bad |= not self.open or self.open.pop() != tag


@dataclass
class WebProviders:
    port: int
    script: list[str] = field(default_factory=list)  # the next answers: "limited", or "refused" (the credential)
    hits: list[Hit] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _hit(self, provider: str, request: Request) -> tuple[dict[str, Any], str]:
        body = json.loads(await request.body())
        self.hits.append(Hit(provider, request.url.path, body, time.monotonic()))
        return body, (self.script.pop(0) if self.script else "ok")

    async def opsgenie(self, request: Request) -> Response:
        body, next_answer = await self._hit("opsgenie", request)
        if next_answer == "refused" or request.headers.get("authorization") != f"GenieKey {OPSGENIE_KEY}":
            return JSONResponse({"message": "Key format is not valid!", "took": 0.0}, 422)
        if request.url.path == "/v2/alerts" and (not body.get("message") or len(body["message"]) > 130):
            return JSONResponse({"message": "Request body is not processable", "errors": {"message": "bad"}}, 422)
        if next_answer == "limited":
            return JSONResponse({"message": "Too many requests"}, 429, headers={"Retry-After": "1"})
        return JSONResponse({"result": "Request will be processed", "requestId": "r-1", "took": 0.01}, 202)

    async def telegram(self, request: Request) -> Response:
        body, next_answer = await self._hit("telegram", request)
        if next_answer == "refused" or request.path_params["token"] != TELEGRAM_TOKEN:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        tags = _Tags()
        tags.feed(body.get("text", ""))
        if body.get("parse_mode") != "HTML" or tags.bad or tags.open or not 0 < len(body.get("text", "")) <= 4096:
            return JSONResponse({"ok": False, "error_code": 400, "description": "Bad Request: can't parse"}, 400)
        if body.get("chat_id") != "-1001234567890":
            return JSONResponse({"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, 400)
        if next_answer == "limited":
            answer = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3"}
            return JSONResponse({**answer, "parameters": {"retry_after": 3}}, 429)
        return JSONResponse({"ok": True, "result": {"message_id": len(self.hits)}})

    async def discord(self, request: Request) -> Response:
        body, next_answer = await self._hit("discord", request)
        if next_answer == "refused" or request.path_params["token"] != DISCORD_TOKEN:
            return JSONResponse({"message": "Unknown Webhook", "code": 10015}, 404)
        embeds = body.get("embeds") or []
        if not embeds or len(embeds[0].get("title", "")) > 256 or len(embeds[0].get("description", "")) > 4096:
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, 400)
        if next_answer == "limited":
            answer = {"message": "You are being rate limited.", "retry_after": 2.0, "global": False}
            return JSONResponse(answer, 429, headers={"Retry-After": "2"})
        return Response(status_code=204)

    async def googlechat(self, request: Request) -> Response:
        body, next_answer = await self._hit("googlechat", request)
        token = request.query_params.get("token")
        if next_answer == "refused" or token != GCHAT_TOKEN or not request.query_params.get("key"):
            return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
        if not 0 < len(body.get("text", "")) <= 4096:
            return JSONResponse({"error": {"code": 400, "status": "INVALID_ARGUMENT"}}, 400)
        if next_answer == "limited":
            return JSONResponse({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, 429)
        return JSONResponse({"name": "spaces/AAA/messages/1", "text": body["text"]})

    async def webex(self, request: Request) -> Response:
        body, next_answer = await self._hit("webex", request)
        if next_answer == "refused" or request.headers.get("authorization") != f"Bearer {WEBEX_TOKEN}":
            return JSONResponse({"message": "The request requires a valid access token set in the header."}, 401)
        if not body.get("roomId") or not 0 < len(body.get("markdown", "").encode()) <= 7439:
            return JSONResponse({"message": "Message text or markdown is required."}, 400)
        if next_answer == "limited":
            return JSONResponse({"message": "Too Many Requests"}, 429, headers={"Retry-After": "2"})
        return JSONResponse({"id": "m-1", "roomId": body["roomId"]})

    def integration(self, provider: str, **wrong: str) -> dict[str, Any]:
        config: dict[str, Any] = {
            "opsgenie": {"api_key": OPSGENIE_KEY, "url": self.base},
            "telegram": {"bot_token": TELEGRAM_TOKEN, "chat_id": "-1001234567890", "url": self.base},
            "discord": {"url": f"{self.base}/api/webhooks/42/{DISCORD_TOKEN}"},
            "googlechat": {"url": f"{self.base}/v1/spaces/AAA/messages?key=k&token={GCHAT_TOKEN}"},
            "webex": {"bot_token": WEBEX_TOKEN, "room_id": "Y2lzY29zcGFyazovL3Vz", "url": self.base},
        }[provider]
        return {**config, **wrong}

    def wrong_credential(self, provider: str) -> dict[str, str]:
        return {
            "opsgenie": {"api_key": "notTheKey0123456789"},
            "telegram": {"bot_token": "999:notTheToken0123456789"},
            "discord": {"url": f"{self.base}/api/webhooks/42/notTheToken0123456789"},
            "googlechat": {"url": f"{self.base}/v1/spaces/AAA/messages?key=k&token=notTheToken0123456789"},
            "webex": {"bot_token": "notTheToken0123456789"},
        }[provider]


async def web_providers() -> AsyncIterator[WebProviders]:
    providers = WebProviders(port=free_port())
    app = Starlette(
        routes=[
            Route("/v2/alerts", providers.opsgenie, methods=["POST"]),
            Route("/v2/alerts/{alias}/close", providers.opsgenie, methods=["POST"]),
            Route("/bot{token}/sendMessage", providers.telegram, methods=["POST"]),
            Route("/api/webhooks/{id}/{token}", providers.discord, methods=["POST"]),
            Route("/v1/spaces/{space}/messages", providers.googlechat, methods=["POST"]),
            Route("/v1/messages", providers.webex, methods=["POST"]),
        ]
    )
    async with serving(app, providers.port):
        yield providers
