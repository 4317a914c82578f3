"""The integrations a receiver sends to, as configuration: one model per channel, each validated when the
routing configuration is loaded (a typo in a key is refused, never ignored). Secrets are `SecretStr`, so they
print as `**********`, and may be written as references (`secretKeyRef`, `secretRef`; see `domain/secrets.py`).
The channels that send them live in `opsbus.notifier.channels`."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# An SMS flood costs money and wakes people: by default one message a minute per recipient, five back to back.
SMS_RATE_LIMIT = {"per_second": 1 / 60, "burst": 5}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    per_second: float = Field(gt=0, description="Sustained sends per second to this integration.")
    burst: int = Field(default=1, ge=1, description="Sends allowed back to back before the rate applies.")


class _Integration(_Strict):
    send_resolved: bool = True
    rate_limit: RateLimit | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=50)


class WebhookConfig(_Integration):
    url: SecretStr
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key; unsigned when absent.")
    headers: dict[str, str] = Field(default_factory=dict)


class SlackConfig(_Integration):
    url: SecretStr = Field(description="Incoming webhook URL.")
    channel: str | None = None
    username: str | None = None


class MsTeamsConfig(_Integration):
    url: SecretStr = Field(description="Incoming webhook (or Workflows) URL.")


class PagerDutyConfig(_Integration):
    routing_key: SecretStr
    url: SecretStr = SecretStr("https://events.pagerduty.com/v2/enqueue")
    severity: str | None = Field(default=None, description="Overrides the alert's severity.")


class EmailConfig(_Integration):
    to: list[str] = Field(min_length=1)
    sender: str = Field(alias="from")
    smarthost: str = Field(description="host:port of the SMTP server.")
    auth_username: str | None = None
    auth_password: SecretStr | None = None
    require_tls: bool = Field(default=True, description="STARTTLS is mandatory unless false (tests, local relays).")
    tls_insecure_skip_verify: bool = False
    ca_file: str | None = Field(
        default=None,
        min_length=1,
        description="PEM file of the CA(s) that signed a private relay's certificate; replaces the system roots.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _verification(self) -> EmailConfig:
        if self.ca_file and self.tls_insecure_skip_verify:
            raise ValueError("ca_file verifies the relay's certificate: it cannot go with tls_insecure_skip_verify")
        return self

    @field_validator("smarthost")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"smarthost {value!r} must be host:port")
        return value


class DingTalkConfig(_Integration):
    """A DingTalk (钉钉) group's custom robot."""

    url: SecretStr = Field(description="The robot's webhook, `https://oapi.dingtalk.com/robot/send?access_token=...`.")
    secret: SecretStr | None = Field(
        default=None, description="The robot's signing secret (`SEC...`): requests are signed when it is set."
    )
    message_type: Literal["markdown", "action_card"] = Field(
        default="action_card", description="action_card adds buttons to the incident and the trace."
    )
    at_mobiles: list[str] = Field(default_factory=list, max_length=50, description="Members to @ by mobile.")
    at_user_ids: list[str] = Field(default_factory=list, max_length=50, description="Members to @ by user id.")
    at_all: bool = False


class WeComConfig(_Integration):
    """A WeCom (企业微信) group robot."""

    url: SecretStr = Field(
        description="The robot's webhook, `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`."
    )
    mention_user_ids: list[str] = Field(default_factory=list, max_length=50, description="`@all` or user ids.")
    mention_mobiles: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Mobiles to @: WeCom's markdown cannot mention by mobile, so the message is sent as text.",
    )


class FeishuConfig(_Integration):
    """A Feishu/Lark (飞书) custom bot (`url`), or an app bot (`app_id`, `app_secret`, `chat_id`): only an app
    bot's cards can carry Approve/Reject buttons, because Feishu posts card clicks to an app, never to a custom
    bot."""

    url: SecretStr | None = Field(
        default=None, description="The custom bot's webhook, `https://open.feishu.cn/open-apis/bot/v2/hook/...`."
    )
    secret: SecretStr | None = Field(default=None, description="The bot's signature secret, when it verifies one.")
    app_id: str | None = Field(default=None, min_length=1, max_length=64, description="The app's App ID (`cli_...`).")
    app_secret: SecretStr | None = Field(default=None, description="The app's App Secret.")
    chat_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="The group the app bot posts to (`oc_...`)."
    )
    api_url: str = Field(
        default="https://open.feishu.cn", description="Open platform base URL (Lark: https://open.larksuite.com)."
    )

    @model_validator(mode="after")
    def _one_bot(self) -> FeishuConfig:
        app = (self.app_id, self.app_secret, self.chat_id)
        if self.url is None and None in app:
            raise ValueError(
                "a Feishu integration needs `url` (custom bot) or app_id, app_secret and chat_id (app bot)"
            )
        if self.url is not None and any(v is not None for v in app):
            raise ValueError("`url` (custom bot) and app_id/app_secret/chat_id (app bot) exclude each other")
        if self.url is None and self.secret is not None:
            raise ValueError("`secret` signs a custom bot's webhook; an app bot authenticates with app_secret")
        return self


class _Sms(_Integration):
    """SMS to one or more numbers. Each number is its own integration (`integrations()` expands them), so each has
    its own retries and its own rate limit: a flood is held back per recipient, and one unreachable number does
    not resend to the others."""

    to: list[str] = Field(min_length=1, max_length=20, description="Numbers in E.164, e.g. `+8613800000000`.")
    rate_limit: RateLimit | None = Field(
        default=RateLimit.model_validate(SMS_RATE_LIMIT),
        description="Per recipient; defaults to one a minute, five back to back (`null` removes it).",
    )

    @field_validator("to")
    @classmethod
    def _e164(cls, numbers: list[str]) -> list[str]:
        bad = [n for n in numbers if not E164.match(n)]
        if bad:
            raise ValueError(f"not E.164 numbers (+<country code><number>, digits only): {', '.join(bad)}")
        return numbers


class AliyunSmsConfig(_Sms):
    """Alibaba Cloud SMS (阿里云短信服务), `SendSms` of Dysmsapi 2017-05-25, with an approved sign and template."""

    access_key_id: SecretStr
    access_key_secret: SecretStr
    sign_name: str = Field(min_length=1, max_length=64, description="The approved signature (签名), e.g. `运维平台`.")
    template_code: str = Field(
        min_length=1,
        max_length=64,
        description="An approved notification template using ${status}, ${severity}, ${alert}, ${where}, ${link}.",
    )
    endpoint: str = Field(default="https://dysmsapi.aliyuncs.com/", description="The API endpoint.")
    region_id: str = "cn-hangzhou"


class TwilioConfig(_Sms):
    """Twilio Programmable Messaging (`POST /2010-04-01/Accounts/{sid}/Messages.json`)."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    sender: str = Field(alias="from", description="The sending number (E.164) or a Messaging Service SID (MG...).")
    endpoint: str = Field(default="https://api.twilio.com", description="The API base URL.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OpsgenieConfig(_Integration):
    """Opsgenie Alert API v2: one alert per notification group (its alias), closed when the group resolves."""

    api_key: SecretStr = Field(description="An API integration's key (sent as `GenieKey`).")
    url: str = Field(default="https://api.opsgenie.com", description="`https://api.eu.opsgenie.com` in the EU.")
    priority: Literal["P1", "P2", "P3", "P4", "P5"] | None = Field(
        default=None, description="Overrides the priority derived from the severity (critical P1, warning P3, info P5)."
    )
    responders: list[dict[str, str]] = Field(default_factory=list, description="e.g. `[{type: team, name: sre}]`.")


class TelegramConfig(_Integration):
    """A Telegram bot posting to a chat (Bot API `sendMessage`)."""

    bot_token: SecretStr
    chat_id: str = Field(min_length=1, max_length=64, description="The chat's id (`-100...` for a group) or @channel.")
    url: str = Field(default="https://api.telegram.org", description="The Bot API server.")


class DiscordConfig(_Integration):
    """A Discord channel webhook (an embed per notification)."""

    url: SecretStr = Field(description="`https://discord.com/api/webhooks/<id>/<token>`.")


class GoogleChatConfig(_Integration):
    """A Google Chat space's incoming webhook."""

    url: SecretStr = Field(description="`https://chat.googleapis.com/v1/spaces/.../messages?key=...&token=...`.")


class WebexConfig(_Integration):
    """A Webex bot posting markdown to a room (`POST /v1/messages`)."""

    bot_token: SecretStr
    room_id: str = Field(min_length=1, max_length=256)
    url: str = Field(default="https://webexapis.com", description="The Webex API base URL.")
