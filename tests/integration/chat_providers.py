"""Stand-ins for the DingTalk, WeCom and Feishu robot APIs on 127.0.0.1, close enough to their documentation to
catch a wrong request: each checks the credential in the URL, the signature (recomputed from the shared secret,
timestamp within an hour, as the providers do), the body's schema and size limit, and answers in the provider's
own error format (`errcode`/`errmsg`, `code`/`msg`), including its rate-limit and permanent error codes.

`script` holds the answers to give next (a provider code, optionally with a Retry-After header), `default`
the answer after it; a request the provider would refuse is answered with the provider's refusal whatever the
script says."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opsbus.common.testing.servers import free_port

DINGTALK_TOKEN, DINGTALK_SECRET = "dtTOKENsecret0123456789", "SECdingtalkSECRET0123456789"
WECOM_KEY = "wecom-KEY-secret-0123456789"
FEISHU_TOKEN, FEISHU_SECRET = "fsTOKENsecret0123456789", "feishuSECRET0123456789"
SECRETS = (DINGTALK_TOKEN, DINGTALK_SECRET, WECOM_KEY, FEISHU_TOKEN, FEISHU_SECRET)


@dataclass
class Reply:
    code: int = 0
    retry_after: str | None = None


@dataclass
class Hit:
    provider: str
    query: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class ChatProviders:
    port: int
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    hits: list[Hit] = field(default_factory=list)

    def url(self, provider: str) -> str:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "dingtalk": f"{base}/robot/send?access_token={DINGTALK_TOKEN}",
            "wecom": f"{base}/cgi-bin/webhook/send?key={WECOM_KEY}",
            "feishu": f"{base}/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
        }[provider]

    def _next(self) -> Reply:
        return self.script.pop(0) if self.script else self.default

    @staticmethod
    def _answer(key: str, message: str, reply: Reply, refusal: tuple[int, str] | None) -> JSONResponse:
        code, text = refusal or (reply.code, "ok" if reply.code == 0 else "scripted")
        headers = {"Retry-After": reply.retry_after} if reply.retry_after and not refusal else {}
        return JSONResponse({key: code, message: text}, headers=headers)

    async def dingtalk(self, request: Request) -> JSONResponse:
        query = dict(request.query_params)
        body = json.loads(await request.body())
        self.hits.append(Hit("dingtalk", query, body, time.monotonic()))
        reply = self._next()
        refusal: tuple[int, str] | None = None
        stamp = query.get("timestamp", "")
        expected = base64.b64encode(
            hmac.new(DINGTALK_SECRET.encode(), f"{stamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256).digest()
        ).decode()
        if query.get("access_token") != DINGTALK_TOKEN:
            refusal = (300001, "token is not exist")
        elif not stamp.isdigit() or abs(int(stamp) - time.time() * 1000) > 3_600_000:
            refusal = (310000, "invalid timestamp")
        elif unquote_plus(request.url.query.split("sign=")[-1]) != expected:
            refusal = (310000, "sign not match")
        elif body.get("msgtype") == "markdown" and {"title", "text"} <= set(body.get("markdown", {})):
            pass
        elif body.get("msgtype") == "actionCard" and {"title", "text", "btns"} <= set(body.get("actionCard", {})):
            if not all({"title", "actionURL"} <= set(b) for b in body["actionCard"]["btns"]):
                refusal = (40035, "btns: missing parameter")
        else:
            refusal = (40035, "missing parameter")
        return self._answer("errcode", "errmsg", reply, refusal)

    async def wecom(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        self.hits.append(Hit("wecom", dict(request.query_params), body, time.monotonic()))
        reply = self._next()
        refusal: tuple[int, str] | None = None
        if request.query_params.get("key") != WECOM_KEY:
            refusal = (93000, "invalid webhook url")
        elif body.get("msgtype") == "markdown":
            content = body.get("markdown", {}).get("content", "")
            if not content:
                refusal = (44004, "empty content")
            elif len(content.encode()) > 4096:
                refusal = (40058, "markdown.content exceed max length 4096")
        elif body.get("msgtype") == "text":
            if len(body.get("text", {}).get("content", "").encode()) > 2048:
                refusal = (40058, "text.content exceed max length 2048")
        else:
            refusal = (40008, "invalid message type")
        return self._answer("errcode", "errmsg", reply, refusal)

    async def feishu(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        self.hits.append(Hit("feishu", {}, body, time.monotonic()))
        reply = self._next()
        refusal: tuple[int, str] | None = None
        stamp = str(body.get("timestamp", ""))
        key = f"{stamp}\n{FEISHU_SECRET}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        card = body.get("card", {})
        if request.path_params["token"] != FEISHU_TOKEN:
            refusal = (19001, "param invalid: incoming webhook access token invalid")
        elif not stamp.isdigit() or abs(int(stamp) - time.time()) > 3600 or body.get("sign") != expected:
            refusal = (19021, "sign match fail or timestamp is not within one hour from current time")
        elif body.get("msg_type") != "interactive" or not card.get("elements") or "header" not in card:
            refusal = (9499, "Bad Request")
        return self._answer("code", "msg", reply, refusal)


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Starlette, port: int) -> AsyncIterator[None]:
    """`app` on 127.0.0.1:`port` until the block ends (the provider stand-ins of these tests share it)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    server = _Quiet(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def chat_providers() -> AsyncIterator[ChatProviders]:
    providers = ChatProviders(port=free_port())
    app = Starlette(
        routes=[
            Route("/robot/send", providers.dingtalk, methods=["POST"]),
            Route("/cgi-bin/webhook/send", providers.wecom, methods=["POST"]),
            Route("/open-apis/bot/v2/hook/{token}", providers.feishu, methods=["POST"]),
        ]
    )
    async with serving(app, providers.port):
        yield providers


def receiver(provider: str, providers: ChatProviders, **extra: Any) -> dict[str, Any]:
    """A receiver's configuration (as YAML would give it) with one integration of `provider`."""
    integration: dict[str, Any] = {"url": providers.url(provider), **extra}
    if provider == "dingtalk":
        integration.setdefault("secret", DINGTALK_SECRET)
    if provider == "feishu":
        integration.setdefault("secret", FEISHU_SECRET)
    return {f"{provider}_configs": [integration]}
