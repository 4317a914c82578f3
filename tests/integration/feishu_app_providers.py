"""A stand-in for Feishu's open platform on 127.0.0.1, the two APIs an app bot sends with, close enough to their
documentation to catch a wrong request:

- `POST /open-apis/auth/v3/tenant_access_token/internal`: checks `app_id`/`app_secret` (a wrong one is code
  10014 "app secret invalid"), hands out `t-<n>` tokens living `expire` seconds;
- `POST /open-apis/im/v1/messages?receive_id_type=chat_id`: checks `Authorization: Bearer <token>` against the
  tokens handed out and not revoked (else HTTP 400, code 99991663 "Invalid access token"), the receive id
  type, the chat (code 230002 "Bot/User can NOT be out of the chat"), `msg_type: interactive` with `content` a
  JSON string of a card with a header and elements, a `uuid` of at most 50 characters (code 230001 "invalid
  param" otherwise); answers `{"code": 0, "msg": "success", "data": {"message_id": ...}}`.

`script` holds the answers to give next (a code with its HTTP status and, for a rate limit,
`x-ogw-ratelimit-reset`), `default` the answer after it; a request the platform would refuse is refused whatever
the script says. `revoke()` makes every token handed out so far invalid, as the platform does when it rotates.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opsbus.common.testing.servers import free_port
from tests.integration.chat_providers import serving

APP_ID, APP_SECRET, CHAT_ID = "cli_a1b2c3d4e5f6", "appSECRETfeishu0123456789abcdef", "oc_opsbus0123456789"


@dataclass
class Reply:
    code: int = 0
    status: int = 200
    reset: str | None = None  # x-ogw-ratelimit-reset


@dataclass
class Message:
    token: str
    body: dict[str, Any]
    card: dict[str, Any]
    at: float


@dataclass
class FeishuOpenPlatform:
    port: int
    expire: int = 7200
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    messages: list[Message] = field(default_factory=list)
    token_requests: int = 0
    valid: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def revoke(self) -> None:
        self.valid.clear()

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `feishu_configs` entry (as YAML would give it) for the app bot on this stand-in."""
        return {"app_id": APP_ID, "app_secret": APP_SECRET, "chat_id": CHAT_ID, "api_url": self.url, **extra}

    async def token(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        if body.get("app_id") != APP_ID or body.get("app_secret") != APP_SECRET:
            return JSONResponse({"code": 10014, "msg": "app secret invalid"}, status_code=400)
        self.token_requests += 1
        token = f"t-{self.token_requests:04d}-{APP_ID}"
        self.valid.add(token)
        return JSONResponse({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.expire})

    async def message(self, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.valid:
            return self._answer(Reply(99991663, 400), "Invalid access token for authorization.")
        body = json.loads(await request.body())
        try:
            card = json.loads(body.get("content", ""))
        except ValueError:
            card = {}
        if request.query_params.get("receive_id_type") != "chat_id":
            return self._answer(Reply(230001, 400), "invalid receive_id_type")
        if body.get("receive_id") != CHAT_ID:
            return self._answer(Reply(230002, 400), "Bot/User can NOT be out of the chat.")
        uuid = body.get("uuid")
        if body.get("msg_type") != "interactive" or not card.get("elements") or "header" not in card:
            return self._answer(Reply(230001, 400), "invalid param: content")
        if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 50):
            return self._answer(Reply(230001, 400), "invalid param: uuid")
        self.messages.append(Message(token, body, card, time.monotonic()))
        reply = self.script.pop(0) if self.script else self.default
        return self._answer(reply, "success" if reply.code == 0 else "scripted")

    @staticmethod
    def _answer(reply: Reply, text: str) -> JSONResponse:
        headers = {"x-ogw-ratelimit-reset": reply.reset} if reply.reset else {}
        data = {"data": {"message_id": "om_dc13264520392913993dd051dba21dcf"}} if reply.code == 0 else {}
        return JSONResponse({"code": reply.code, "msg": text, **data}, status_code=reply.status, headers=headers)


async def feishu_open_platform() -> AsyncIterator[FeishuOpenPlatform]:
    platform = FeishuOpenPlatform(port=free_port())
    routes = [
        Route("/open-apis/auth/v3/tenant_access_token/internal", platform.token, methods=["POST"]),
        Route("/open-apis/im/v1/messages", platform.message, methods=["POST"]),
    ]
    async with serving(Starlette(routes=routes), platform.port):
        yield platform
