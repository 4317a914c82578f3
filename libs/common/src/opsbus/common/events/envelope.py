"""The CloudEvents 1.0 envelope every opsbus message travels in (structured content mode).

The NATS payload is the JSON event itself (content type `application/cloudevents+json`); `data` holds the
type's payload. Extensions link events into chains and traces: `correlationid` (the event that started the
chain), `causationid` (the direct cause), `traceparent`/`tracestate` (W3C trace context).

The NATS subject is derived from the envelope, never chosen separately, so the two cannot disagree:
family and verb come from `type`, the cluster from `source`, the namespace from `subject`.

This module must stay free of I/O: it is imported by pure planners.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, Self, TypeVar

import uuid_utils
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from opsbus.common.errors import UndecodableError
from opsbus.common.events.subjects import CLUSTER_SCOPED, validate_token

CONTENT_TYPE: Final = "application/cloudevents+json"
DATA_CONTENT_TYPE: Final = "application/json"
SPEC_VERSION: Final = "1.0"

# Validation runs in pydantic-core (Rust) through these patterns: decoding is on every consumer's hot path.
_TOKEN_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,252}"  # noqa: S105 - a regex, not a secret
_TYPE_PATTERN = r"^io\.opsbus\.[a-z][a-z_]*\.[a-z][a-z_]*\.v[1-9][0-9]*$"
_SOURCE_PATTERN = rf"^/opsbus/[a-z][a-z0-9-]*/{_TOKEN_PATTERN}$"
_SUBJECT_PATTERN = rf"^[^/]+/(_|{_TOKEN_PATTERN})/.+$"
_TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
_TYPE = re.compile(r"^io\.opsbus\.(?P<family>[a-z][a-z_]*)\.(?P<verb>[a-z][a-z_]*)\.v(?P<version>[1-9][0-9]*)$")
_SOURCE = re.compile(r"^/opsbus/(?P<service>[a-z][a-z0-9-]*)/(?P<cluster>[^/]+)$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def new_event_id() -> str:
    """A UUIDv7: unique, and sortable by creation time."""
    return str(uuid_utils.uuid7())


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventPayload(BaseModel):
    """Base of every event payload. Subclasses set `event_type` and register themselves.

    Payloads are versioned by the `vN` suffix of their type: new fields must be optional; a breaking change
    is a new class with a new version, published alongside the old one until consumers move.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    registry: ClassVar[dict[str, type[EventPayload]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        event_type = cls.__dict__.get("event_type")
        if event_type is None:
            return  # an abstract intermediate class
        if not _TYPE.match(event_type):
            raise TypeError(f"{cls.__name__}.event_type {event_type!r} must look like io.opsbus.<family>.<verb>.vN")
        existing = EventPayload.registry.get(event_type)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise TypeError(f"event type {event_type} is registered twice: {existing.__name__} and {cls.__name__}")
        EventPayload.registry[event_type] = cls

    @classmethod
    def family(cls) -> str:
        return parse_type(cls.event_type)[0]

    @classmethod
    def verb(cls) -> str:
        return parse_type(cls.event_type)[1]


P = TypeVar("P", bound=EventPayload)


def parse_type(event_type: str) -> tuple[str, str, int]:
    """`io.opsbus.alert.fired.v1` -> (`alert`, `fired`, 1)."""
    match = _TYPE.match(event_type)
    if match is None:
        raise ValueError(f"event type {event_type!r} must look like io.opsbus.<family>.<verb>.v<N>")
    return match["family"], match["verb"], int(match["version"])


class ObjectRef(BaseModel):
    """The Kubernetes object an event is about: becomes the CloudEvents `subject` `<kind>/<namespace>/<name>`."""

    model_config = ConfigDict(frozen=True)

    kind: str
    name: str
    namespace: str | None = None

    def as_subject(self) -> str:
        return f"{self.kind}/{self.namespace or CLUSTER_SCOPED}/{self.name}"

    @classmethod
    def from_subject(cls, subject: str) -> ObjectRef:
        parts = subject.split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"CloudEvents subject {subject!r} must be <kind>/<namespace>/<name>")
        kind, namespace, name = parts
        return cls(kind=kind, namespace=None if namespace == CLUSTER_SCOPED else namespace, name=name)


class Envelope(BaseModel):
    """A CloudEvents 1.0 event in structured mode, with opsbus's extensions.

    Every required attribute has no default: what is read from the wire must carry it (an event without
    `specversion` is not a CloudEvent). Defaults apply only when producing, in `build()`.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(pattern=_SOURCE_PATTERN, description="/opsbus/<service>/<cluster>")
    type: str = Field(pattern=_TYPE_PATTERN, description="io.opsbus.<family>.<verb>.v<N>")
    time: AwareDatetime
    subject: str = Field(pattern=_SUBJECT_PATTERN, description="<kind>/<namespace or _>/<name>")
    datacontenttype: Literal["application/json"]
    data: dict[str, Any]
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = Field(default=None, pattern=_TRACEPARENT_PATTERN)
    tracestate: str | None = None
    # The payload decoded from `data` once (by the consumer that admitted the event) is kept in the model's
    # private slot, as ("decoded": (data object, type, payload)): a copy with other `data` or `type` decodes afresh.
    # Not a declared PrivateAttr on purpose: one makes pydantic run Python code on every construction, a visible
    # cost on the consumer's hot path. Not an attribute either: equality ignores it.

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Envelope):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.__dict__ == other.__dict__
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    __hash__ = None  # type: ignore[assignment]  # `data` is a dict: an envelope was never hashable

    # --- derived attributes -------------------------------------------------------------------------
    @property
    def cluster(self) -> str:
        match = _SOURCE.match(self.source)
        assert match is not None  # validated
        return match["cluster"]

    @property
    def service(self) -> str:
        match = _SOURCE.match(self.source)
        assert match is not None  # validated
        return match["service"]

    @property
    def object(self) -> ObjectRef:
        return ObjectRef.from_subject(self.subject)

    @property
    def family(self) -> str:
        return parse_type(self.type)[0]

    @property
    def verb(self) -> str:
        return parse_type(self.type)[1]

    def nats_subject(self) -> str:
        """`<family>.<verb>.<cluster>.<namespace>`, the NATS subject this event is published on.

        Every part was validated when the envelope was built, so this is plain string work (it runs once per
        publish on the hot path).
        """
        type_parts = self.type.split(".")
        cluster = self.source.rsplit("/", 1)[1]
        namespace = self.subject.split("/", 2)[1]
        return f"{type_parts[2]}.{type_parts[3]}.{cluster}.{namespace}"

    # --- payload ------------------------------------------------------------------------------------
    def payload(self) -> EventPayload:
        """Decode `data` into the registered payload model of `type`; `UndecodableError` if impossible.

        Decoded once per envelope: a consumer's bus decodes it before the handler runs, and the handler's own
        `payload()`/`payload_as()` calls then cost nothing.
        """
        cached = self._cached()
        if cached is not None and cached[0] is self.data and cached[1] == self.type:
            return cached[2]
        model = EventPayload.registry.get(self.type)
        if model is None:
            raise UndecodableError(f"unknown event type {self.type!r}")
        return self._decode(model)

    def payload_as(self, model: builtins.type[P]) -> P:
        """Decode `data` as `model`, checking the type matches."""
        if self.type != model.event_type:
            raise UndecodableError(f"expected {model.event_type}, got {self.type}")
        cached = self._cached()
        if cached is not None and cached[0] is self.data and isinstance(cached[2], model):
            return cached[2]
        return self._decode(model)

    def _decode(self, model: builtins.type[P]) -> P:
        try:
            decoded = model.model_validate(self.data)
        except ValidationError as exc:
            raise UndecodableError(f"invalid {self.type} payload: {_summarise(exc)}") from exc
        object.__setattr__(self, "__pydantic_private__", {"decoded": (self.data, self.type, decoded)})
        return decoded

    def _cached(self) -> tuple[dict[str, Any], str, EventPayload] | None:
        private = self.__pydantic_private__
        return private.get("decoded") if private else None

    # --- wire format --------------------------------------------------------------------------------
    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Read an event from the wire: every required attribute must be present (none is defaulted)."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise UndecodableError(f"not a valid opsbus CloudEvent: {_summarise(exc)}") from exc

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        payload: EventPayload,
        *,
        service: str,
        cluster: str,
        obj: ObjectRef,
        cause: Envelope | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> Self:
        """A new event carrying `payload` about `obj`.

        With `cause`, the new event continues its chain: `causationid` is the cause's id and `correlationid`
        is inherited (or the cause's id if the cause started the chain). Without it, the event starts a chain.
        Pass `event_id` for a deterministic id when replicas must deduplicate (the `Nats-Msg-Id` window).
        """
        validate_token(cluster, what="cluster name")
        if obj.namespace is not None:
            validate_token(obj.namespace, what="namespace")
        eid = event_id or new_event_id()
        correlation = (cause.correlationid or cause.id) if cause else eid
        return cls(
            specversion=SPEC_VERSION,
            id=eid,
            source=f"/opsbus/{service}/{cluster}",
            type=payload.event_type,
            time=time or utcnow(),
            subject=obj.as_subject(),
            datacontenttype=DATA_CONTENT_TYPE,
            data=payload.model_dump(mode="json", exclude_none=True),
            correlationid=correlation,
            causationid=cause.id if cause else None,
        )


_PATTERN_HINTS = {
    "type": "must look like io.opsbus.<family>.<verb>.v<N>",
    "source": "must be /opsbus/<service>/<cluster>, the cluster a valid NATS subject token "
    "(letters, digits, '-', '_'; no '.', '*', '>' or spaces)",
    "subject": "must be <kind>/<namespace>/<name>, the namespace `_` or a valid NATS subject token",
    "traceparent": "is not W3C trace context (version-traceid-spanid-flags)",
}


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "<root>"
    hint = _PATTERN_HINTS.get(where) if error["type"] == "string_pattern_mismatch" else None
    if hint:
        return f"{where} {error['input']!r} {hint}"
    return f"{where}: {error['msg']}"


def _summarise(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [_describe(e) for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more
