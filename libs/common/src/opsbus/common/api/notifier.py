"""`opsbus.svc.notifier.<operation>`: silences, the routing tree, and editing the routing configuration.

Operations and their models:

* `create_silence` CreateSilenceRequest -> SilenceView; `list_silences` ListSilencesRequest -> SilenceList;
  `expire_silence` ExpireSilenceRequest -> SilenceView (404 unknown id).
* `get_routes` Empty -> RoutesView: the routing tree in force, no secrets.
* `validate_routes` ValidateRoutesRequest -> ValidateRoutesResponse: never applies anything; every problem is
  given as text (`problems`) and structured with its YAML path and line (`issues`).
* `get_config` GetConfigRequest -> ConfigVersion: the YAML in force (or a past version), with its version.
* `put_config` PutConfigRequest -> ConfigVersion: store and apply a new version. Optimistic concurrency:
  `expected_version` must be the version in force, else 409 (fetch, reapply the change, retry). An invalid YAML
  is refused with 422 naming every problem (validate first to get them structured). Secrets (webhook URLs,
  routing keys, passwords, HMAC keys) must be `${VARIABLE}` references resolved from the notifier's
  environment, never literal values, so that a stored configuration can be read back without revealing them.
* `list_config_versions` ListConfigVersionsRequest -> ConfigVersionList: the history, newest first.
* Receiver secrets, values stored encrypted by the notifier and referenced from the YAML as
  `secretRef: <name>`; write-only (no operation returns a value), each change audited by the notifier:
  `put_receiver_secret` PutReceiverSecretRequest -> ReceiverSecretView; `list_receiver_secrets` Empty ->
  ReceiverSecretList (names and metadata); `delete_receiver_secret` DeleteReceiverSecretRequest ->
  ReceiverSecretView (404 unknown, 409 while the configuration in force references it);
  `rotate_receiver_secrets` RotateReceiverSecretsRequest -> RotateReceiverSecretsResponse (re-encrypt every
  value under the first key). The value crosses the bus in the request only (`SecretStr`: masked in reprs and
  logs, written out only when the request is serialised for the wire).

* Read-only views for the console: `preview_silence` PreviewSilenceRequest -> SilencePreview (the firing alerts
  the matchers would mute now); `list_deliveries` ListDeliveriesRequest -> DeliveryList (the delivery log, every
  attempt, newest first, keyset by id); `alert_outcomes` AlertOutcomesRequest -> AlertOutcomeList (what became
  of an alert per receiver: delivered, muted by a silence, inhibited...).

The notifier takes these models from here (`opsbus.notifier.domain.api` re-exports them and adds matcher
syntax checks, answering 400 with the reason); here a matcher is a non-empty string. The mutating requests
name the `caller` the gateway acts for: the notifier audits the call (`silence.create`, `silence.expire`,
`routes.put`) in the transaction of the write. Pure pydantic, no I/O.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_serializer, model_validator

from opsbus.common.api.calling import Caller

SERVICE = "notifier"
SilenceState = Literal["pending", "active", "expired"]
ConfigSource = Literal["file", "api"]
# A receiver secret's name: lower-case DNS-subdomain-like, so it reads the same in YAML, URLs and shells.
RECEIVER_SECRET_NAME = r"^[a-z0-9]([-a-z0-9._]{0,251}[a-z0-9])?$"  # noqa: S105 - a name pattern
RECEIVER_SECRET_MAX_BYTES = 65_536


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSilenceRequest(_Model):
    matchers: list[str] = Field(min_length=1, description='Alertmanager matchers, e.g. `namespace="payments"`.')
    starts_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    ends_at: AwareDatetime | None = Field(default=None, description="End of the silence (or give duration).")
    duration_seconds: float | None = Field(default=None, gt=0, le=90 * 86400)
    created_by: str = Field(min_length=1, max_length=253)
    comment: str = Field(min_length=1, max_length=2000)
    caller: Caller | None = Field(default=None, description="Audited as the actor of the call, with its request id.")

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
    caller: Caller | None = Field(default=None, description="Audited as the actor of the call, with its request id.")


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
    version: int | None = Field(default=None, description="The configuration version in force (see get_config).")


class ValidateRoutesRequest(_Model):
    yaml: str = Field(min_length=1, max_length=1_000_000)


class ConfigIssue(_Model):
    """One problem of a configuration: where it is (`route.routes[1].group_wait`, line 14) and what is wrong."""

    path: str = Field(description="YAML path, e.g. `receivers[0].slack_configs[0].url`; `<root>` for the document.")
    line: int | None = Field(default=None, description="1-based line in the YAML, when known.")
    message: str


class ValidateRoutesResponse(_Model):
    valid: bool
    problems: list[str] = Field(default_factory=list, description="Every problem as `path (line N): message`.")
    issues: list[ConfigIssue] = Field(default_factory=list, description="The same problems, structured.")


class GetConfigRequest(_Model):
    version: int | None = Field(default=None, ge=1, description="A past version; default: the one in force.")


class ConfigVersion(_Model):
    version: int = Field(ge=1)
    yaml: str = Field(description="The stored YAML; literal secrets (file-seeded versions only) read `<redacted>`.")
    sha256: str = Field(description="SHA-256 (hex) of the stored YAML.")
    source: ConfigSource = Field(description="`file`: seeded from the configuration file at start; `api`: put.")
    author: str
    comment: str | None = None
    created_at: AwareDatetime
    active: bool = Field(description="True when this is the version in force.")
    redacted: bool = Field(default=False, description="True when literal secrets were replaced in `yaml`.")


class PutConfigRequest(_Model):
    yaml: str = Field(min_length=1, max_length=1_000_000, description="The whole new configuration YAML.")
    expected_version: int = Field(ge=0, description="The version being replaced; 409 when it is not the latest.")
    author: str = Field(min_length=1, max_length=253)
    comment: str | None = Field(default=None, max_length=2000)
    caller: Caller | None = Field(default=None, description="Audited as the actor of the call, with its request id.")


class ListConfigVersionsRequest(_Model):
    limit: int = Field(default=20, ge=1, le=200)


class ConfigVersionSummary(_Model):
    version: int
    sha256: str
    source: ConfigSource
    author: str
    comment: str | None = None
    created_at: AwareDatetime
    active: bool


class ConfigVersionList(_Model):
    versions: list[ConfigVersionSummary] = Field(description="Newest first.")


class PutReceiverSecretRequest(_Model):
    name: str = Field(pattern=RECEIVER_SECRET_NAME, max_length=253)
    value: SecretStr = Field(min_length=1, max_length=RECEIVER_SECRET_MAX_BYTES)
    updated_by: str = Field(min_length=1, max_length=253)
    comment: str | None = Field(default=None, max_length=2000)

    @field_serializer("value", when_used="json")
    def _wire(self, value: SecretStr) -> str:
        return value.get_secret_value()  # the request must carry it; reprs and logs stay masked


class ReceiverSecretView(_Model):
    """A stored secret's metadata; never its value."""

    name: str
    key_id: str = Field(description="Id of the encryption key the value is stored under (a digest, not the key).")
    created_at: AwareDatetime
    updated_at: AwareDatetime
    updated_by: str


class ReceiverSecretList(_Model):
    secrets: list[ReceiverSecretView] = Field(description="By name.")


class DeleteReceiverSecretRequest(_Model):
    name: str = Field(pattern=RECEIVER_SECRET_NAME, max_length=253)
    deleted_by: str = Field(min_length=1, max_length=253)


class RotateReceiverSecretsRequest(_Model):
    rotated_by: str = Field(min_length=1, max_length=253)


class RotateReceiverSecretsResponse(_Model):
    rotated: int = Field(description="Values re-encrypted under the first key.")
    total: int = Field(description="Values stored.")
    key_id: str = Field(description="Id of the key every value is now stored under.")


class PreviewSilenceRequest(_Model):
    matchers: list[str] = Field(min_length=1, max_length=50)


class FiringAlert(_Model):
    fingerprint: str
    labels: dict[str, str]
    since: AwareDatetime = Field(description="When the notifier last saw it fire.")


class SilencePreview(_Model):
    alerts: list[FiringAlert] = Field(description="The firing alerts the matchers select, which a silence would mute.")
    firing: int = Field(description="How many alerts fire in all.")


class ListDeliveriesRequest(_Model):
    limit: int = Field(default=100, ge=1, le=500)
    before: int | None = Field(default=None, ge=1, description="Keyset cursor: attempts with a smaller id.")
    outcome: Literal["delivered", "retry", "dead"] | None = None
    receiver: str | None = Field(default=None, max_length=200)


class DeliveryAttempt(_Model):
    id: int
    notification_id: str
    integration: str
    receiver: str
    channel: str
    attempt: int
    outcome: str = Field(description="delivered, retry (failed, another attempt follows) or dead (the last failed).")
    status_code: int | None
    error: str | None
    retry_after_seconds: float | None
    latency_ms: float
    at: AwareDatetime


class DeliveryList(_Model):
    items: list[DeliveryAttempt]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last one.")


class AlertOutcomesRequest(_Model):
    fingerprint: str = Field(min_length=1, max_length=64)
    since: AwareDatetime | None = Field(default=None, description="Only outcomes routed at or after this time.")
    limit: int = Field(default=50, ge=1, le=200)


class AlertOutcomeView(_Model):
    event_id: str
    receiver: str
    integration: str
    status: str = Field(description="The alert's status notified: firing or resolved.")
    state: str = Field(description="routed, queued, delivered, dead, muted or not_sent.")
    reason: str | None
    notification_id: str | None
    routed_at: AwareDatetime
    updated_at: AwareDatetime


class AlertOutcomeList(_Model):
    items: list[AlertOutcomeView] = Field(description="Newest first.")
