"""Channels: send one rendered notification to one integration and say what happened, as data.

Every channel returns an `Outcome` (never raises for a delivery failure) that the executor turns into a
delivery-log row, a retry or a dead letter (the contract is in `channels.base`). One module per provider says how
its API is signed, what its body looks like and which of its error codes are worth a retry; this module builds
the channels of a receiver from its configuration. Errors are described without the URL, which is a secret for
most chat webhooks: never log or publish `integration.url`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from opsbus.notifier.channels import dingtalk, discord, feishu, feishu_app, googlechat, webex, wecom
from opsbus.notifier.channels.aliyun_sms import AliyunSmsChannel
from opsbus.notifier.channels.base import Channel, HttpChannel, Outcome, http_client, redact, secret_parts
from opsbus.notifier.channels.email import ChannelConfigError, EmailChannel, tls_context_from
from opsbus.notifier.channels.opsgenie import OpsgenieChannel
from opsbus.notifier.channels.telegram import TelegramChannel
from opsbus.notifier.channels.twilio import TwilioChannel
from opsbus.notifier.domain.config import ReceiverConfig
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import (
    AliyunSmsConfig,
    DingTalkConfig,
    DiscordConfig,
    EmailConfig,
    FeishuConfig,
    GoogleChatConfig,
    MsTeamsConfig,
    OpsgenieConfig,
    PagerDutyConfig,
    SlackConfig,
    TelegramConfig,
    TwilioConfig,
    WebexConfig,
    WebhookConfig,
    WeComConfig,
)
from opsbus.notifier.rendering import Renderer, pagerduty_body, slack_body, teams_body, webhook_body

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


def _webhook(config: WebhookConfig, renderer: Renderer, client: httpx.AsyncClient) -> Channel:
    secret = config.secret.get_secret_value().encode() if config.secret else None

    def build(n: Notification) -> dict[str, Any]:
        return webhook_body(n, renderer.render(n), renderer.links)

    url = config.url.get_secret_value()
    return HttpChannel("webhook", client, url, build, headers=config.headers, secret=secret)


def _slack(config: SlackConfig, renderer: Renderer, client: httpx.AsyncClient) -> Channel:
    def build(n: Notification) -> dict[str, Any]:
        return slack_body(n, renderer.render(n), renderer.links, channel=config.channel, username=config.username)

    return HttpChannel("slack", client, config.url.get_secret_value(), build)


def _teams(config: MsTeamsConfig, renderer: Renderer, client: httpx.AsyncClient) -> Channel:
    def build(n: Notification) -> dict[str, Any]:
        return teams_body(n, renderer.render(n), renderer.links)

    return HttpChannel("msteams", client, config.url.get_secret_value(), build)


def _pagerduty(config: PagerDutyConfig, renderer: Renderer, client: httpx.AsyncClient) -> Channel:
    key = config.routing_key.get_secret_value()

    def build(n: Notification) -> dict[str, Any]:
        return pagerduty_body(n, renderer.render(n), renderer.links, routing_key=key, severity=config.severity)

    return HttpChannel("pagerduty", client, config.url.get_secret_value(), build, redact=[key])


def _feishu(config: FeishuConfig, renderer: Renderer, client: httpx.AsyncClient) -> Channel:
    """A custom bot (webhook URL) or an app bot (app id, secret and chat: cards with Approve/Reject)."""
    if config.app_id is not None:
        return feishu_app.channel(config, renderer, client)
    return feishu.channel(config, renderer, client)


# integration configuration -> the channel sending to it (email also takes the send timeout)
_FACTORIES: dict[type[Any], Callable[[Any, Renderer, httpx.AsyncClient], Channel]] = {
    WebhookConfig: _webhook,
    SlackConfig: _slack,
    MsTeamsConfig: _teams,
    PagerDutyConfig: _pagerduty,
    DingTalkConfig: dingtalk.channel,
    WeComConfig: wecom.channel,
    FeishuConfig: _feishu,
    AliyunSmsConfig: AliyunSmsChannel,
    TwilioConfig: TwilioChannel,
    OpsgenieConfig: OpsgenieChannel,
    TelegramConfig: TelegramChannel,
    DiscordConfig: discord.channel,
    GoogleChatConfig: googlechat.channel,
    WebexConfig: webex.channel,
}


def build_channels(
    receiver: ReceiverConfig, renderer: Renderer, client: httpx.AsyncClient, *, timeout: float = 10.0
) -> dict[str, Channel]:
    """`<kind>/<index>` -> channel, for every integration of `receiver` (rendered with its own templates and
    language)."""
    renderer = renderer.for_receiver(receiver.templates, receiver.language)
    out: dict[str, Channel] = {}
    for kind, index, config in receiver.integrations():
        if isinstance(config, EmailConfig):
            out[f"{kind}/{index}"] = EmailChannel(config, renderer, timeout)
        else:
            out[f"{kind}/{index}"] = _FACTORIES[type(config)](config, renderer, client)
    return out
