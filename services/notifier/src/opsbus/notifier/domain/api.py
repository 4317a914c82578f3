"""Request and response models of the notifier's request-reply endpoints (`opsbus.svc.notifier.<op>`).

They live in `opsbus.common.api.notifier` (the gateway calls these endpoints); this module names them for the
notifier's own code so there is one definition on the wire. `CreateSilenceRequest` adds what only the notifier
can check: the syntax of every matcher (a bad one answers 400 with the reason).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import field_validator

from opsbus.common.api import notifier as common
from opsbus.common.api.notifier import (
    ConfigIssue,
    ConfigVersion,
    ConfigVersionList,
    ConfigVersionSummary,
    DeleteReceiverSecretRequest,
    Empty,
    ExpireSilenceRequest,
    GetConfigRequest,
    ListConfigVersionsRequest,
    ListSilencesRequest,
    PutConfigRequest,
    PutReceiverSecretRequest,
    ReceiverSecretList,
    ReceiverSecretView,
    RotateReceiverSecretsRequest,
    RotateReceiverSecretsResponse,
    RoutesView,
    RouteView,
    SilenceList,
    SilenceView,
    ValidateRoutesRequest,
    ValidateRoutesResponse,
)
from opsbus.notifier.domain.matchers import Matcher, MatcherError

__all__ = [
    "ConfigIssue",
    "ConfigVersion",
    "ConfigVersionList",
    "ConfigVersionSummary",
    "CreateSilenceRequest",
    "DeleteReceiverSecretRequest",
    "Empty",
    "ExpireSilenceRequest",
    "GetConfigRequest",
    "ListConfigVersionsRequest",
    "ListSilencesRequest",
    "PutConfigRequest",
    "PutReceiverSecretRequest",
    "ReceiverSecretList",
    "ReceiverSecretView",
    "RotateReceiverSecretsRequest",
    "RotateReceiverSecretsResponse",
    "RouteView",
    "RoutesView",
    "SilenceList",
    "SilenceView",
    "ValidateRoutesRequest",
    "ValidateRoutesResponse",
]


class CreateSilenceRequest(common.CreateSilenceRequest):
    @field_validator("matchers")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                Matcher.parse(text)
            except MatcherError as exc:
                raise ValueError(str(exc)) from None
        return value

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = self.starts_at or now
        end = self.ends_at or start + timedelta(seconds=self.duration_seconds or 0)
        return start, end
