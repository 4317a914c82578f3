"""The notifier's HTTP channels against a real local receiver on 127.0.0.1: the wire format a user's server sees.

Slack, Microsoft Teams, PagerDuty Events v2 and the generic webhook, built from receiver configuration by
`build_channels` exactly as the service builds them, and sent a `Notification` made from the catalogue's example
alert. The receiver is a real server: Starlette on uvicorn standing in for Slack, Teams and PagerDuty;
`asyncio.start_server` for a server that never answers. Nothing is mocked: what is asserted is what went over the
socket, and the `Outcome` the executor acts on (delivered, retryable with Retry-After, final), including that no
error text ever carries a webhook URL or a secret. Email is in test_notifier_channels_email.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsbus.common.testing.servers import free_port
from opsbus.notifier.channels import Outcome, build_channels
from opsbus.notifier.domain.config import ReceiverConfig
from tests.integration.notifier_channel_harness import (
    EVIDENCE,
    GATEWAY,
    PD_KEY,
    PD_PATH,
    SLACK_PATH,
    TEAMS_PATH,
    assert_clean,
    channel_for,
    http_client,
    notification,
    renderer,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in http_client():
        yield c


# --- a real HTTP receiver: Starlette on uvicorn -----------------------------------------------------
@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    echo_path: bool = False  # answer "Cannot POST <path>", as Express and many proxies do
    echo_body: bool = False  # answer with the request body quoted, as some APIs do in validation errors


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HttpReceiver:
    port: int
    hits: list[Hit] = field(default_factory=list)
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.hits.append(Hit(request.method, request.url.path, dict(request.headers), body))
        answer = self.script.pop(0) if self.script else self.default
        text = answer.body
        if answer.echo_path:
            text = f"Cannot POST {request.url.path}"
        if answer.echo_body:
            text = f"invalid event: {body.decode()}"
        return Response(text, status_code=answer.status, headers=answer.headers, media_type="text/plain")


@pytest.fixture
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(port=free_port())
    app = Starlette(routes=[Route("/{path:path}", receiver.endpoint, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=receiver.port, log_config=None, access_log=False, lifespan="off", ws="none"
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("receiver did not start")
        await asyncio.sleep(0.01)
    yield receiver
    server.should_exit = True
    await task


# --- Slack ------------------------------------------------------------------------------------------
def _slack(receiver: HttpReceiver) -> dict[str, Any]:
    return {"slack_configs": [{"url": receiver.url(SLACK_PATH), "channel": "#oncall", "username": "opsbus"}]}


async def test_slack_block_kit_carries_alert_severity_reason_and_evidence(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    channel = channel_for(client, _slack(http_receiver))
    n = notification()
    outcome = await channel.send(n)

    assert outcome == Outcome(True, 200)
    [hit] = http_receiver.hits
    assert (hit.method, hit.path) == ("POST", SLACK_PATH)
    assert hit.headers["content-type"] == "application/json"
    body = hit.json()
    assert body["channel"] == "#oncall" and body["username"] == "opsbus"
    assert "KubePodCrashLooping" in body["text"]  # the notification fallback text
    blocks = body["blocks"]
    header, section = blocks[0], blocks[1]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith("[FIRING:1] KubePodCrashLooping")
    assert len(header["text"]["text"]) <= 150  # Slack rejects longer header text
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    assert len(text) <= 3000
    assert "is crash looping" in text
    assert "*Severity:* critical" in text
    assert "*Reason:* CrashLoopBackOff" in text
    for line in EVIDENCE:
        assert line in text
    assert "```" in text  # the evidence is a code block
    [actions] = [b for b in blocks if b["type"] == "actions"]
    urls = {e["text"]["text"]: e["url"] for e in actions["elements"]}
    assert urls["Incident"] == f"{GATEWAY}/v1/incidents/{n.alerts[0].correlationid}"
    assert urls["Runbook"] == "https://runbooks.example.com/KubePodCrashLooping"
    assert all(e["type"] == "button" for e in actions["elements"])


async def test_slack_429_is_retryable_after_the_delay_slack_asked(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    http_receiver.script = [
        Answer(429, "rate_limited", {"Retry-After": "7"}),
        Answer(429, "rate_limited", {"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}),
        Answer(503, "service unavailable"),
        Answer(404, "no_service"),
        Answer(403, "invalid_token"),
    ]
    channel = channel_for(client, _slack(http_receiver))
    n = notification()

    seconds = await channel.send(n)
    assert (seconds.delivered, seconds.status_code, seconds.retryable, seconds.retry_after) == (False, 429, True, 7.0)
    assert seconds.error is not None and seconds.error.startswith("HTTP 429")

    date = await channel.send(n)
    assert date.retryable and date.retry_after is not None and 110.0 <= date.retry_after <= 120.0

    unavailable = await channel.send(n)
    assert (unavailable.retryable, unavailable.retry_after) == (True, None)
    # a removed webhook or a revoked token will not get better: final, not retried
    for final in (await channel.send(n), await channel.send(n)):
        assert not final.delivered and not final.retryable
    assert len(http_receiver.hits) == 5


# --- Microsoft Teams --------------------------------------------------------------------------------
async def test_teams_sends_an_adaptive_card_in_a_message(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    http_receiver.default = Answer(202, "")  # Workflows answer 202 Accepted
    channel = channel_for(client, {"msteams_configs": [{"url": http_receiver.url(TEAMS_PATH)}]})
    n = notification()
    assert await channel.send(n) == Outcome(True, 202)

    [hit] = http_receiver.hits
    assert hit.path == TEAMS_PATH and hit.headers["content-type"] == "application/json"
    body = hit.json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["$schema"].startswith("http://adaptivecards.io/")
    assert card["version"] == "1.4"
    title, facts, text = card["body"]
    assert title["type"] == "TextBlock" and title["text"].startswith("[FIRING:1] KubePodCrashLooping")
    assert facts["type"] == "FactSet"
    assert {"title": "severity", "value": "critical"} in facts["facts"]
    assert text["type"] == "TextBlock" and text["wrap"] is True
    assert "Reason: CrashLoopBackOff" in text["text"]
    for line in EVIDENCE:
        assert line in text["text"]
    assert {
        "type": "Action.OpenUrl",
        "title": "Incident",
        "url": f"{GATEWAY}/v1/incidents/{n.alerts[0].correlationid}",
    } in card["actions"]


# --- PagerDuty --------------------------------------------------------------------------------------
async def test_pagerduty_trigger_then_resolve_with_one_dedup_key(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    http_receiver.default = Answer(202, '{"status":"success","message":"Event processed"}')
    channel = channel_for(client, {"pagerduty_configs": [{"routing_key": PD_KEY, "url": http_receiver.url(PD_PATH)}]})
    assert await channel.send(notification("firing", seq=1)) == Outcome(True, 202)
    assert await channel.send(notification("resolved", seq=2)) == Outcome(True, 202)

    trigger, resolve = (hit.json() for hit in http_receiver.hits)
    assert all(hit.path == PD_PATH for hit in http_receiver.hits)
    assert trigger["routing_key"] == resolve["routing_key"] == PD_KEY
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] != ""
    assert len(trigger["dedup_key"]) <= 255
    payload = trigger["payload"]
    assert payload["summary"].startswith("[FIRING:1] KubePodCrashLooping")
    assert len(payload["summary"]) <= 1024
    assert payload["severity"] == "critical"
    assert payload["source"] == "prod"
    assert payload["component"] == "checkout" and payload["group"] == "payments"
    assert payload["class"] == "KubePodCrashLooping"
    assert "STRIPE_API_BASE is not set" in payload["custom_details"]["text"]
    assert {"href": f"{GATEWAY}/v1/incidents/{notification().alerts[0].correlationid}", "text": "Incident"} in trigger[
        "links"
    ]
    assert "payload" not in resolve  # a resolve carries only the key and the action


async def test_pagerduty_severity_override_and_errors(http_receiver: HttpReceiver, client: httpx.AsyncClient) -> None:
    http_receiver.script = [
        Answer(202, "{}"),
        Answer(400, '{"status":"invalid event"}'),
        Answer(429, "", {"Retry-After": "3"}),
    ]
    channel = channel_for(
        client,
        {"pagerduty_configs": [{"routing_key": PD_KEY, "url": http_receiver.url(PD_PATH), "severity": "warning"}]},
    )
    n = notification()
    assert (await channel.send(n)).delivered
    assert http_receiver.hits[0].json()["payload"]["severity"] == "warning"
    invalid = await channel.send(n)
    assert (invalid.delivered, invalid.retryable, invalid.status_code) == (False, False, 400)
    throttled = await channel.send(n)
    assert (throttled.retryable, throttled.retry_after) == (True, 3.0)


# --- no secret in any error -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["slack", "msteams", "pagerduty", "webhook"])
async def test_no_error_message_carries_the_url_or_a_secret(
    kind: str, http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    path = {"slack": SLACK_PATH, "msteams": TEAMS_PATH, "pagerduty": PD_PATH, "webhook": SLACK_PATH}[kind]

    def configure(url: str) -> dict[str, Any]:
        if kind == "pagerduty":
            return {"pagerduty_configs": [{"routing_key": PD_KEY, "url": url}]}
        if kind == "webhook":
            return {"webhook_configs": [{"url": url, "secret": PD_KEY}]}
        return {f"{kind}_configs": [{"url": url}]}

    url = http_receiver.url(path)
    channel = channel_for(client, configure(url))
    # a 404 page quoting the path (the secret part of a Slack or Teams URL), a 400 quoting the body (the routing key)
    http_receiver.script = [Answer(404, echo_path=True), Answer(400, echo_body=True)]
    for _ in range(2):
        outcome = await channel.send(notification())
        assert outcome.status_code in (404, 400)
        assert_clean(outcome, url)

    # nothing listening on that port: connection refused
    closed = f"http://127.0.0.1:{free_port()}{path}"
    refused = await channel_for(client, configure(closed)).send(notification())
    assert refused.retryable
    assert_clean(refused, closed)

    # a server that accepts and never answers: timeout, retryable
    release = asyncio.Event()
    handlers: list[asyncio.Task[Any]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.extend(t for t in [asyncio.current_task()] if t is not None)
        await reader.read(65536)
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    hanging = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"
    async with httpx.AsyncClient(timeout=0.3) as quick:
        timed_out = await channel_for(quick, configure(hanging)).send(notification())
    release.set()
    server.close()
    await server.wait_closed()
    await asyncio.gather(*handlers)
    assert handlers  # the request did reach the server
    assert timed_out.retryable and timed_out.error is not None and timed_out.error.startswith("timeout")
    assert_clean(timed_out, hanging)


# --- a receiver's own templates ---------------------------------------------------------------------------
async def test_a_receivers_templates_shape_what_slack_and_the_webhook_receive(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    templates = {"title": "{{ n.common_labels.namespace }} on fire", "text": "{{ n.alerts[0].reason }} {{ fence }}"}
    hook = {"url": http_receiver.url("/hook")}
    channels = build_channels(
        ReceiverConfig.model_validate(
            {"name": "team", "templates": templates, "slack_configs": [hook], "webhook_configs": [hook]}
        ),
        renderer(),
        client,
    )
    for channel in (channels["slack/0"], channels["webhook/0"]):
        assert (await channel.send(notification())).delivered
    slack_hit, webhook_hit = (h.json() for h in http_receiver.hits)
    assert slack_hit["text"] == "payments on fire"
    assert slack_hit["blocks"][0]["text"]["text"] == "payments on fire"
    assert (webhook_hit["title"], webhook_hit["text"]) == ("payments on fire", "CrashLoopBackOff ```")
    assert webhook_hit["alerts"][0]["evidence"]["logLines"][-3:] == EVIDENCE  # the data is all still there
