"""Channels: send one rendered notification to one integration and say what happened, as data.

Every channel returns an `Outcome` (never raises for a delivery failure) that the executor turns into a
delivery-log row, a retry or a dead letter (the contract is in `channels.base`). One module per provider says how
its API is signed, what its body looks like and which of its error codes are worth a retry; this module builds
the channels of a receiver from its configuration. Errors are described without the URL, which is a secret for
most chat webhooks: never log or publish `integration.url`.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsbus.notifier.channels import dingtalk, feishu, wecom
from opsbus.notifier.channels.aliyun_sms import AliyunSmsChannel
from opsbus.notifier.channels.base import Channel, HttpChannel, Outcome, http_client, redact, secret_parts
from opsbus.notifier.channels.email import ChannelConfigError, EmailChannel, tls_context_from
from opsbus.notifier.channels.twilio import TwilioChannel
from opsbus.notifier.domain.config import ReceiverConfig
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import (
    AliyunSmsConfig,
    DingTalkConfig,
    EmailConfig,
    FeishuConfig,
    MsTeamsConfig,
    PagerDutyConfig,
    SlackConfig,
    TwilioConfig,
    WebhookConfig,
    WeComConfig,
)
from opsbus.notifier.rendering import Links, Renderer, pagerduty_body, slack_body, teams_body, webhook_body

__all__ = [
    "Channel",
    "ChannelConfigError",
    "EmailChannel",
    "HttpChannel",
    "Outcome",
    "build_channels",
    "http_client",
    "redact",
    "secret_parts",
    "tls_context_from",
]


def build_channels(
    receiver: ReceiverConfig, renderer: Renderer, client: httpx.AsyncClient, *, timeout: float = 10.0
) -> dict[str, Channel]:
    """`<kind>/<index>` -> channel, for every integration of `receiver` (rendered with its own templates)."""
    renderer = renderer.for_receiver(receiver.templates, receiver.language)
    links: Links = renderer.links
    out: dict[str, Channel] = {}
    for kind, index, config in receiver.integrations():
        name = f"{kind}/{index}"
        if isinstance(config, WebhookConfig):
            secret = config.secret.get_secret_value().encode() if config.secret else None

            def build_webhook(n: Notification) -> dict[str, Any]:
                return webhook_body(n, renderer.render(n), links)

            out[name] = HttpChannel(
                kind, client, config.url.get_secret_value(), build_webhook, headers=config.headers, secret=secret
            )
        elif isinstance(config, SlackConfig):
            cfg_s = config

            def build_slack(n: Notification, cfg_s: SlackConfig = cfg_s) -> dict[str, Any]:
                return slack_body(n, renderer.render(n), links, channel=cfg_s.channel, username=cfg_s.username)

            out[name] = HttpChannel(kind, client, config.url.get_secret_value(), build_slack)
        elif isinstance(config, MsTeamsConfig):

            def build_teams(n: Notification) -> dict[str, Any]:
                return teams_body(n, renderer.render(n), links)

            out[name] = HttpChannel(kind, client, config.url.get_secret_value(), build_teams)
        elif isinstance(config, PagerDutyConfig):
            cfg_p = config

            def build_pd(n: Notification, cfg_p: PagerDutyConfig = cfg_p) -> dict[str, Any]:
                return pagerduty_body(
                    n,
                    renderer.render(n),
                    links,
                    routing_key=cfg_p.routing_key.get_secret_value(),
                    severity=cfg_p.severity,
                )

            out[name] = HttpChannel(
                kind, client, config.url.get_secret_value(), build_pd, redact=[config.routing_key.get_secret_value()]
            )
        elif isinstance(config, EmailConfig):
            out[name] = EmailChannel(config, renderer, timeout)
        elif isinstance(config, DingTalkConfig):
            out[name] = dingtalk.channel(config, renderer, client)
        elif isinstance(config, WeComConfig):
            out[name] = wecom.channel(config, renderer, client)
        elif isinstance(config, FeishuConfig):
            out[name] = feishu.channel(config, renderer, client)
        elif isinstance(config, AliyunSmsConfig):
            out[name] = AliyunSmsChannel(config, renderer, client)
        elif isinstance(config, TwilioConfig):
            out[name] = TwilioChannel(config, renderer, client)
    return out
