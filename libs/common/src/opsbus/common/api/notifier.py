"""`opsbus.svc.notifier.{create_silence,list_silences,expire_silence,get_routes,validate_routes}`.

Mirrors `opsbus.notifier.domain.api` (the notifier's own copy) on the wire. Matcher syntax is checked by the
notifier itself (it answers 400 with the reason); here a matcher is a non-empty string.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SERVICE = "notifier"
SilenceState = Literal["pending", "active", "expired"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSilenceRequest(_Model):
    matchers: list[str] = Field(min_length=1, description='Alertmanager matchers, e.g. `namespace="payments"`.')
    starts_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    ends_at: AwareDatetime | None = Field(default=None, description="End of the silence (or give duration).")
    duration_seconds: float | None = Field(default=None, gt=0, le=90 * 86400)
    created_by: str = Field(min_length=1, max_length=253)
    comment: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _end(self) -> Self:
        if (self.ends_at is None) == (self.duration_seconds is None):
            raise ValueError("give exactly one of ends_at and duration_seconds")
        return self


class SilenceView(_Model):
    id: str
    matchers: list[str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str
    comment: str
    state: SilenceState


class ListSilencesRequest(_Model):
    state: SilenceState | None = None


class SilenceList(_Model):
    silences: list[SilenceView]


class ExpireSilenceRequest(_Model):
    id: str = Field(min_length=1)
    expired_by: str = Field(min_length=1, max_length=253)


class Empty(_Model):
    pass


class RouteView(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    id: str
    receiver: str
    matchers: list[str]
    group_by: list[str]
    group_wait_seconds: float
    group_interval_seconds: float
    repeat_interval_seconds: float
    continue_: bool = Field(alias="continue")
    routes: list[RouteView] = Field(default_factory=list)


class RoutesView(_Model):
    route: RouteView
    receivers: dict[str, list[str]] = Field(description="Receiver -> its integrations (`webhook/0`...), no URLs.")
    inhibit_rules: int


class ValidateRoutesRequest(_Model):
    yaml: str = Field(min_length=1, max_length=1_000_000)


class ValidateRoutesResponse(_Model):
    valid: bool
    problems: list[str] = Field(default_factory=list)
