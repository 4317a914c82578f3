"""Request and response models of the notifier's request-reply endpoints (`opsbus.svc.notifier.<op>`).

They live here until the gateway issue moves the shared ones into `opsbus.common` (DESIGN.md section 2 puts
request/response models there); the field names are the contract and will not change in the move.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from opsbus.notifier.domain.matchers import Matcher, MatcherError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSilenceRequest(_Model):
    matchers: list[str] = Field(min_length=1, description='Alertmanager matchers, e.g. `namespace="payments"`.')
    starts_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    ends_at: AwareDatetime | None = Field(default=None, description="End of the silence (or give duration).")
    duration_seconds: float | None = Field(default=None, gt=0, le=90 * 86400)
    created_by: str = Field(min_length=1, max_length=253)
    comment: str = Field(min_length=1, max_length=2000)

    @field_validator("matchers")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                Matcher.parse(text)
            except MatcherError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _end(self) -> Self:
        if (self.ends_at is None) == (self.duration_seconds is None):
            raise ValueError("give exactly one of ends_at and duration_seconds")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = self.starts_at or now
        end = self.ends_at or start + timedelta(seconds=self.duration_seconds or 0)
        return start, end


class SilenceView(_Model):
    id: str
    matchers: list[str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str
    comment: str
    state: Literal["pending", "active", "expired"]


class ListSilencesRequest(_Model):
    state: Literal["pending", "active", "expired"] | None = None


class SilenceList(_Model):
    silences: list[SilenceView]


class ExpireSilenceRequest(_Model):
    id: str = Field(min_length=1)
    expired_by: str = Field(min_length=1, max_length=253)


class Empty(_Model):
    pass


class RouteView(_Model):
    id: str
    receiver: str
    matchers: list[str]
    group_by: list[str]
    group_wait_seconds: float
    group_interval_seconds: float
    repeat_interval_seconds: float
    continue_: bool = Field(alias="continue")
    routes: list[RouteView] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class RoutesView(_Model):
    route: RouteView
    receivers: dict[str, list[str]] = Field(description="Receiver -> its integrations (`webhook/0`...), no URLs.")
    inhibit_rules: int


class ValidateRoutesRequest(_Model):
    yaml: str = Field(min_length=1, max_length=1_000_000)


class ValidateRoutesResponse(_Model):
    valid: bool
    problems: list[str] = Field(default_factory=list)
