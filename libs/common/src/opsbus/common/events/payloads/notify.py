"""`notify.*`: the outcome of each delivery attempt of the notifier, its delivery log on the bus."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from opsbus.common.events.envelope import EventPayload


class ChannelKind(StrEnum):
    SLACK = "slack"
    MSTEAMS = "msteams"
    WEBHOOK = "webhook"
    EMAIL = "email"
    PAGERDUTY = "pagerduty"
    DINGTALK = "dingtalk"
    WECOM = "wecom"
    FEISHU = "feishu"
    ALIYUN_SMS = "aliyun_sms"
    TWILIO = "twilio"
    OPSGENIE = "opsgenie"
    TELEGRAM = "telegram"
    DISCORD = "discord"
    GOOGLECHAT = "googlechat"
    WEBEX = "webex"


class _Delivery(EventPayload):
    """Fields of every delivery outcome (abstract: no event type). Never carries webhook URLs or secrets."""

    notification_id: str = Field(min_length=1, description="Id of this notification (stable across attempts).")
    channel: ChannelKind = Field(description="Channel kind.")
    receiver: str = Field(min_length=1, description="Receiver name from the routing tree.")
    group_key: str = Field(description="Alertmanager-style group key (route + group_by label values).")
    notification_key: str = Field(description="Deduplication key sent to the channel (e.g. PagerDuty dedup_key).")
    attempt: int = Field(ge=1, description="Attempt number, 1 for the first try.")
    event_ids: tuple[str, ...] = Field(min_length=1, description="Ids of the events this notification covered.")
    alert_fingerprints: tuple[str, ...] = Field(default=(), description="Fingerprints of the alerts it covered.")
    status_code: int | None = Field(default=None, ge=100, le=599, description="HTTP status (or SMTP code mapped).")
    latency_ms: float = Field(ge=0, description="Time of the attempt, request to response.")


class NotifyDelivered(_Delivery):
    """The channel accepted the notification."""

    event_type: ClassVar[str] = "io.opsbus.notify.delivered.v1"


class NotifyFailed(_Delivery):
    """An attempt failed. `final` means no retry follows and the notification is dead-lettered."""

    event_type: ClassVar[str] = "io.opsbus.notify.failed.v1"

    error: str = Field(max_length=2048, description="What failed (status text, timeout, TLS error), no secrets.")
    retryable: bool = Field(description="Whether the failure was considered transient (5xx, 429, timeout).")
    final: bool = Field(description="True after the last attempt: dead-lettered.")
    retry_after_seconds: float | None = Field(default=None, ge=0, description="The channel's Retry-After, if sent.")
    next_attempt_at: AwareDatetime | None = Field(default=None, description="When the next attempt is scheduled.")
