"""What a consumer lets through to its handler: the one admission rule for every event read from the bus.

Anyone with publish rights on a subject can write anything on it, so a handler must never be the first to
look at what arrived. Before any handler runs, the bus admits a message only if

1. it is a CloudEvent with every required attribute present on the wire (`Envelope.from_json`: nothing is
   defaulted when reading);
2. it was published on the subject its envelope derives (`<family>.<verb>` from `type`, the cluster from
   `source`, the namespace from `subject`): an event of another family, verb, cluster or namespace put on a
   subject it does not belong to is refused, so subject permissions and subject filters mean what they say;
3. its type, version included, is one the consumer accepts: a type registered in `opsbus.common.events`
   whose `<family>.<verb>` the consumer's subject filters carry (or the narrower list the consumer declares);
4. its `data` validates against that type's payload model (decoded once; the handler's own `payload()`
   reuses it).

A refused message raises `UndecodableError`, which the consumer turns into term + copy to `dlq.<subject>`
with the reason. This module decides nothing about an event's meaning, only whether it is well-formed for
this consumer.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import opsbus.common.events.payloads  # noqa: F401 - registers every production payload model
from opsbus.common.errors import ConfigurationError, UndecodableError
from opsbus.common.events.envelope import Envelope, EventPayload, parse_type

# Reasons name what the consumer accepts; a long list is cut here rather than in the DLQ header.
_LISTED = 12


def carries(pattern: str, family: str, verb: str) -> bool:
    """Whether the NATS subject filter `pattern` matches some subject `<family>.<verb>.<cluster>.<namespace>`."""
    tokens = pattern.split(".")
    for index, wanted in enumerate((family, verb)):
        if index >= len(tokens):
            return False
        if tokens[index] == ">":
            return True
        if tokens[index] not in ("*", wanted):
            return False
    rest = tokens[2:]  # must match two tokens: the cluster and the namespace
    return rest == [">"] or (len(rest) == 2 and rest[0] != ">")


def family_payloads(*families: str) -> tuple[builtins.type[EventPayload], ...]:
    """Every registered payload model (each type and version) of `families`, for `ConsumerSpec.accepts`."""
    return tuple(m for t, m in sorted(EventPayload.registry.items()) if parse_type(t)[0] in families)


@dataclass(frozen=True, slots=True)
class Acceptance:
    """The event types one consumer accepts, by type string, with the payload model of each."""

    consumer: str
    models: Mapping[str, builtins.type[EventPayload]]

    @classmethod
    def of(
        cls, consumer: str, subjects: Sequence[str], accepts: Sequence[builtins.type[EventPayload]] | None
    ) -> Acceptance:
        """Build from a consumer's subject filters and, if declared, the payload models it accepts.

        Undeclared: every registered type its filters carry, which must all be of one family (a consumer that
        deliberately takes several families says so). Declared: each model must be one its filters carry.
        """
        if accepts is None:
            models = {
                t: m for t, m in EventPayload.registry.items() if any(carries(p, *parse_type(t)[:2]) for p in subjects)
            }
            families = {parse_type(t)[0] for t in models}
            if len(families) > 1:
                raise ConfigurationError(
                    f"consumer {consumer} reads several families ({', '.join(sorted(families))}): "
                    "declare the event types it accepts (ConsumerSpec.accepts)"
                )
        else:
            models = {m.event_type: m for m in accepts}
            stray = [t for t in models if not any(carries(p, *parse_type(t)[:2]) for p in subjects)]
            if stray:
                raise ConfigurationError(
                    f"consumer {consumer} accepts {', '.join(stray)}, which its subjects {list(subjects)} never carry"
                )
        if not models:
            raise ConfigurationError(f"consumer {consumer}: no known event type is published on {list(subjects)}")
        return cls(consumer, models)

    def admit(self, raw: bytes, subject: str) -> Envelope:
        """The event in `raw`, received on `subject`, with its payload decoded; `UndecodableError` saying why
        not if the consumer must not handle it."""
        event = Envelope.from_json(raw)
        if event.nats_subject() != subject:
            raise UndecodableError(_misplaced(event, subject))
        model = self.models.get(event.type)
        if model is None:
            raise UndecodableError(self._unknown(event.type))
        event.payload_as(model)
        return event

    def _unknown(self, event_type: str) -> str:
        family, verb, version = parse_type(event_type)
        versions = sorted(t for t in self.models if parse_type(t)[:2] == (family, verb))
        if versions:
            return (
                f"unknown version v{version} of {family}.{verb}: consumer {self.consumer} knows {', '.join(versions)}"
            )
        accepted = sorted(self.models)
        listed = ", ".join(accepted[:_LISTED]) + (
            f" (+{len(accepted) - _LISTED} more)" if len(accepted) > _LISTED else ""
        )
        what = "unknown event type" if event_type not in EventPayload.registry else "event type not accepted"
        return f"{what} {event_type}: consumer {self.consumer} accepts {listed}"


def _misplaced(event: Envelope, subject: str) -> str:
    expected = event.nats_subject()
    tokens = subject.split(".")
    if tokens[:2] != expected.split(".")[:2]:
        where = ".".join(tokens[:2])
        return (
            f"type {event.type} does not belong on subject {subject}: "
            f"a {where} subject carries io.opsbus.{where}.v<N> events"
        )
    return (
        f"published on {subject}, but its envelope (source {event.source}, subject {event.subject}) "
        f"belongs on {expected}"
    )
