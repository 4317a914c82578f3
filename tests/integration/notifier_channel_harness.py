"""The notifier channels' test harness: the notification every channel test sends, a channel built from receiver
configuration exactly as the service builds it, and the check that an error names no secret.

Shared by test_notifier_channels_http.py (Slack, Teams, PagerDuty, webhook) and test_notifier_channels_email.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx

from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.notifier.channels import Channel, Outcome, build_channels
from opsbus.notifier.domain.config import ReceiverConfig
from opsbus.notifier.domain.grouping import Notification, notification_id
from opsbus.notifier.domain.notices import Notice, notice_from
from opsbus.notifier.rendering import Links, Renderer

GATEWAY = "https://opsbus.example.com"
SLACK_PATH = "/services/T0001/B0002/slackTOKENsecret42"
TEAMS_PATH = "/webhookb2/aaaa-bbbb/IncomingWebhook/teamsTOKENsecret42/cccc"
PD_PATH = "/v2/enqueue"
PD_KEY = "R0UTINGKEYsecret0123456789abcdef"
SMTP_PASSWORD = "smtp-Passw0rd-secret"
EVIDENCE = [
    "[app previous] INFO starting checkout 1.42.0",
    "[app previous] ERROR config: STRIPE_API_BASE is not set",
    "[app previous] FATAL exiting with status 1",
]


# --- the notification -------------------------------------------------------------------------------
def _notice(event_type: str) -> Notice:
    notice = notice_from(example_events()[event_type])
    assert notice is not None
    return notice


def notification(status: str = "firing", seq: int = 1) -> Notification:
    notice = _notice(AlertFired.event_type if status == "firing" else AlertResolved.event_type)
    key = '0:{alertname="KubePodCrashLooping",namespace="payments"}'
    common = {k: v for k, v in notice.labels.items() if k != "event_type"}
    return Notification(
        id=notification_id(key, "e0", seq),
        group_key=key,
        epoch="e0",
        seq=seq,
        receiver="team",
        status=status,
        group_labels={"alertname": "KubePodCrashLooping", "namespace": "payments"},
        common_labels=common,
        alerts=(notice,),
        repeat=False,
    )


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def traced(n: Notification) -> Notification:
    """`n` with its alerts carrying a trace context, so channels can link the trace."""
    return dataclasses.replace(n, alerts=tuple(a.model_copy(update={"traceparent": TRACEPARENT}) for a in n.alerts))


def renderer() -> Renderer:
    return Renderer(Links(gateway_url=GATEWAY, jaeger_url="https://jaeger.example.com"))


def channel_for(client: httpx.AsyncClient, receiver: dict[str, Any], *, timeout: float = 5.0) -> Channel:
    """The one channel of `receiver`, built as the service builds it."""
    [channel] = build_channels(
        ReceiverConfig.model_validate({"name": "team", **receiver}), renderer(), client, timeout=timeout
    ).values()
    return channel


async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


# --- no secret in any error -------------------------------------------------------------------------
def _secrets(url: str) -> list[str]:
    return [url, SLACK_PATH, TEAMS_PATH, "slackTOKENsecret42", "teamsTOKENsecret42", PD_KEY, SMTP_PASSWORD]


def assert_clean(outcome: Outcome, url: str) -> None:
    assert not outcome.delivered
    assert outcome.error
    for secret in _secrets(url):
        assert secret not in outcome.error, (secret, outcome.error)
