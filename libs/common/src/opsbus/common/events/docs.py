"""Generate the event reference in docs/ from the payload models and the family catalogue.

    python -m opsbus.common.events.docs --write docs    # regenerate (what `make docs` runs)
    python -m opsbus.common.events.docs --check docs    # exit 1 and list stale files (CI, `make docs-check`)

Two artefacts, both derived, never edited by hand:

- `events/schemas/<event type>.json`: a JSON Schema (draft 2020-12) of the *whole CloudEvent* of that type,
  with the payload's schema as `data`. That is what travels on the wire and what a team validating messages
  from a NATS subscription or the gateway's stream holds in hand; the payload alone is under `$defs`.
- `events/asyncapi.yaml`: an AsyncAPI 3.0.0 document with one channel per family and verb
  (`<family>.<verb>.{cluster}.{namespace}`), the message of each type, send/receive operations per service
  from `catalog.FAMILIES`, and the JetStream stream and retention of each channel.

Output is deterministic (sorted keys, catalogue order, no timestamps) so `--check` compares byte for byte.
This module only renders text and writes files: it must never import the bus, the store or a network client.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from opsbus.common.events.catalog import DLQ, FAMILIES, Family
from opsbus.common.events.envelope import CONTENT_TYPE, DATA_CONTENT_TYPE, SPEC_VERSION, EventPayload
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import opsbus_payload_types

__all__ = ["ASYNCAPI_PATH", "SCHEMAS_DIR", "asyncapi_document", "check", "event_schema", "main", "render", "write"]

SCHEMAS_DIR = Path("events/schemas")
ASYNCAPI_PATH = Path("events/asyncapi.yaml")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Header names the bus library sets (opsbus.common.bus.publishing / consuming); a unit test pins them.
MSG_ID_HEADER = "Nats-Msg-Id"
DLQ_HEADERS: dict[str, str] = {
    "Opsbus-Dlq-Reason": "Why the message was dead-lettered (the handler's error or the decode error).",
    "Opsbus-Dlq-Consumer": "The durable consumer that gave up on it.",
    "Opsbus-Dlq-Stream": "The stream the message came from.",
    "Opsbus-Dlq-Stream-Seq": "Its sequence in that stream.",
    "Opsbus-Dlq-Deliveries": "How many deliveries were attempted.",
    "Opsbus-Dlq-Original-Subject": "The subject it was first published on.",
    "Opsbus-Dlq-Time": "When it was dead-lettered (RFC 3339).",
}

_TOKEN = "[A-Za-z0-9_][A-Za-z0-9_-]*"  # noqa: S105 - a NATS token pattern, not a secret

# --- registry ----------------------------------------------------------------------------------------


def payload_types() -> list[type[EventPayload]]:
    """Every opsbus payload model, in catalogue order (family, then verb, then version)."""
    order = {(fam.name, verb): (i, j) for i, fam in enumerate(FAMILIES) for j, verb in enumerate(fam.verbs)}
    models = list(opsbus_payload_types().values())
    unknown = [m.event_type for m in models if (m.family(), m.verb()) not in order]
    if unknown:
        raise ValueError(f"payload types not in the catalogue: {sorted(unknown)}")
    return sorted(models, key=lambda m: (*order[(m.family(), m.verb())], m.event_type))


def _version(model: type[EventPayload]) -> str:
    return model.event_type.rsplit(".", 1)[1]


def _summary(model: type[EventPayload]) -> str:
    doc = (model.__doc__ or model.__name__).strip()
    return doc.split("\n\n", 1)[0].replace("\n", " ")


# --- the CloudEvent envelope -------------------------------------------------------------------------


def envelope_properties() -> dict[str, Any]:
    """JSON Schema properties of the opsbus CloudEvent attributes (without `type` and `data`)."""
    return {
        "specversion": {"const": SPEC_VERSION, "description": "CloudEvents version."},
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "Event id: a UUIDv7, or a deterministic id where replicas must deduplicate. "
            f"Equal to the `{MSG_ID_HEADER}` header.",
        },
        "source": {
            "type": "string",
            "pattern": f"^/opsbus/[a-z][a-z0-9-]*/{_TOKEN}$",
            "description": "`/opsbus/<service>/<cluster>`: the producing service and the cluster concerned.",
        },
        "time": {"type": "string", "format": "date-time", "description": "When it happened (RFC 3339)."},
        "subject": {
            "type": "string",
            "pattern": "^[^/]+/[^/]+/.+$",
            "description": "`<kind>/<namespace>/<name>` of the object concerned (`_` as namespace when "
            "cluster-scoped).",
        },
        "datacontenttype": {"const": DATA_CONTENT_TYPE, "description": "Content type of `data`."},
        "correlationid": {
            "type": "string",
            "description": "Id of the event that started the chain (the alert, the deploy request).",
        },
        "causationid": {"type": "string", "description": "Id of the event that directly caused this one."},
        "traceparent": {
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C trace context, also in the NATS headers.",
        },
        "tracestate": {"type": "string", "description": "W3C trace state."},
    }


ENVELOPE_REQUIRED = ("specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data")


def example_event(model: type[EventPayload]) -> dict[str, Any] | None:
    """The example CloudEvent of `model` as JSON data, if `examples` has one."""
    raw = _example_json().get(model.event_type)
    return None if raw is None else dict(json.loads(raw))


@functools.cache
def _example_json() -> dict[str, bytes]:
    return {event_type: event.to_json() for event_type, event in example_events().items()}


def event_schema(model: type[EventPayload]) -> dict[str, Any]:
    """A standalone JSON Schema of the CloudEvent carrying `model` as `data`, with an example."""
    payload = model.model_json_schema(mode="validation")
    defs: dict[str, Any] = payload.pop("$defs", {})
    if model.__name__ in defs:
        raise ValueError(f"{model.__name__} collides with one of its own sub-models")
    defs[model.__name__] = payload
    properties = envelope_properties()
    properties["type"] = {"const": model.event_type, "description": "CloudEvents type."}
    properties["data"] = {"$ref": f"#/$defs/{model.__name__}"}
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": model.event_type,
        "description": f"{_summary(model)} A CloudEvents 1.0 event in structured mode ({CONTENT_TYPE}); "
        f"the payload is `data` ({model.__module__}.{model.__name__}).",
        "type": "object",
        "required": list(ENVELOPE_REQUIRED),
        "properties": properties,
        "additionalProperties": True,
        "$defs": defs,
        "examples": [example] if (example := example_event(model)) else [],
    }


# --- AsyncAPI ----------------------------------------------------------------------------------------


def _duration(delta: timedelta) -> str:
    days, rest = divmod(int(delta.total_seconds()), 86_400)
    hours = rest // 3600
    return f"P{days}D" if not hours else f"P{days}DT{hours}H" if days else f"PT{hours}H"


def _human(delta: timedelta) -> str:
    days = delta.total_seconds() / 86_400
    return f"{int(delta.total_seconds() // 3600)} h" if days <= 1 else f"{int(days)} d"


def _stream_note(fam: Family) -> dict[str, Any]:
    return {
        "stream": fam.stream,
        "subjects": fam.subjects,
        "maxAge": _duration(fam.retention),
        "maxAgeSeconds": int(fam.retention.total_seconds()),
        "duplicateWindowHeader": MSG_ID_HEADER,
    }


_PARAMETERS: dict[str, Any] = {
    "cluster": {
        "description": "Cluster name, a NATS token (letters, digits, `-`, `_`). Subscribe with `*` for all.",
        "examples": ["prod", "staging-eu"],
    },
    "namespace": {
        "description": "Namespace of the object concerned, or `_` for cluster-scoped objects (nodes). "
        "Subscribe with `*` for all.",
        "examples": ["payments", "_"],
    },
}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every opsbus event, as plain data."""
    models = payload_types()
    ref_template = "#/components/schemas/{model}"
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=ref_template)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    schemas["CloudEvent"] = {
        "type": "object",
        "description": "The opsbus CloudEvents 1.0 envelope (structured mode). `type` selects `data`'s schema.",
        "required": list(ENVELOPE_REQUIRED),
        "properties": {
            **envelope_properties(),
            "type": {"type": "string", "pattern": r"^io\.opsbus\.[a-z_]+\.[a-z_]+\.v[1-9][0-9]*$"},
            "data": {"type": "object"},
        },
    }
    schemas["NatsHeaders"] = {
        "type": "object",
        "properties": {
            MSG_ID_HEADER: {"type": "string", "description": "Equals the event id: JetStream deduplicates on it."},
            "Content-Type": {"const": CONTENT_TYPE},
            "traceparent": {"type": "string", "description": "W3C trace context, as in the event."},
            "tracestate": {"type": "string", "description": "W3C trace state, as in the event."},
        },
        "required": [MSG_ID_HEADER],
    }
    schemas["DeadLetterHeaders"] = {
        "type": "object",
        "description": "Headers the bus adds when it dead-letters a message (the original headers are kept).",
        "properties": {name: {"type": "string", "description": text} for name, text in DLQ_HEADERS.items()},
        "required": ["Opsbus-Dlq-Reason", "Opsbus-Dlq-Original-Subject"],
    }

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for fam in FAMILIES:
        for verb in fam.verbs:
            versions = [m for m in models if m.family() == fam.name and m.verb() == verb]
            channel_id = f"{fam.name}.{verb}"
            channel_messages: dict[str, Any] = {}
            for model in versions:
                message_id = model.event_type
                schema_id = model.event_type
                schemas[schema_id] = {
                    "allOf": [
                        {"$ref": "#/components/schemas/CloudEvent"},
                        {
                            "type": "object",
                            "properties": {
                                "type": {"const": model.event_type},
                                "data": {"$ref": ref_template.format(model=model.__name__)},
                            },
                        },
                    ]
                }
                messages[message_id] = {
                    "name": model.event_type,
                    "title": model.__name__,
                    "summary": _summary(model),
                    "contentType": CONTENT_TYPE,
                    "headers": {"$ref": "#/components/schemas/NatsHeaders"},
                    "payload": {"$ref": f"#/components/schemas/{schema_id}"},
                    "correlationId": {
                        "description": "Links the chain: the alert or deploy request that started it.",
                        "location": "$message.payload#/correlationid",
                    },
                    "x-opsbus-payload-class": f"{model.__module__}.{model.__name__}",
                }
                example = example_event(model)
                if example is not None:
                    messages[message_id]["examples"] = [
                        {
                            "name": f"{model.__name__}Example",
                            "headers": {MSG_ID_HEADER: example["id"], "Content-Type": CONTENT_TYPE},
                            "payload": example,
                        }
                    ]
                channel_messages[f"{model.__name__}.{_version(model)}"] = {
                    "$ref": f"#/components/messages/{message_id}"
                }
            summaries = "; ".join(_summary(m) for m in versions)
            channels[channel_id] = {
                "address": f"{fam.name}.{verb}.{{cluster}}.{{namespace}}",
                "title": channel_id,
                "summary": summaries,
                "description": (
                    f"{fam.description} Stored in JetStream stream `{fam.stream}` (subjects `{fam.subjects}`), "
                    f"kept {_human(fam.retention)}. Published by {', '.join(fam.producers_of(verb))}; "
                    f"consumed by {', '.join(fam.consumers_of(verb))}."
                ),
                "parameters": {
                    "cluster": {"$ref": "#/components/parameters/cluster"},
                    "namespace": {"$ref": "#/components/parameters/namespace"},
                },
                "messages": channel_messages,
                "x-opsbus-stream": _stream_note(fam),
            }
            refs = [{"$ref": f"#/channels/{channel_id}/messages/{key}"} for key in channel_messages]
            for action, services in (("send", fam.producers_of(verb)), ("receive", fam.consumers_of(verb))):
                for service in services:
                    operations[f"{service}.{action}.{channel_id}"] = {
                        "action": action,
                        "channel": {"$ref": f"#/channels/{channel_id}"},
                        "title": f"{service} {'publishes' if action == 'send' else 'consumes'} {channel_id}",
                        "messages": refs,
                    }

    channels["dlq"] = {
        "address": "dlq.{family}.{verb}.{cluster}.{namespace}",
        "title": "dead letters",
        "description": (
            f"{DLQ.description} Stored in JetStream stream `{DLQ.stream}` (subjects `{DLQ.subjects}`), kept "
            f"{_human(DLQ.retention)}. The body is the original bytes, which may not be a valid event."
        ),
        "parameters": {
            "family": {"description": "Family of the original subject.", "enum": [f.name for f in FAMILIES]},
            "verb": {"description": "Verb of the original subject."},
            "cluster": {"$ref": "#/components/parameters/cluster"},
            "namespace": {"$ref": "#/components/parameters/namespace"},
        },
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        "x-opsbus-stream": _stream_note(DLQ),
    }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "A message a consumer terminated, with the reason in headers.",
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"description": "The original message body, unchanged."},
    }
    operations["bus.send.dlq"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/dlq"},
        "title": "the bus library dead-letters a message",
        "messages": [{"$ref": "#/channels/dlq/messages/DeadLetter"}],
    }
    operations["operators.receive.dlq"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/dlq"},
        "title": "operators inspect and replay dead letters",
        "messages": [{"$ref": "#/channels/dlq/messages/DeadLetter"}],
    }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "opsbus events",
            "version": "1.0.0",
            "description": (
                "Every event on the opsbus bus: CloudEvents 1.0 in structured mode on NATS JetStream, subject "
                "`<family>.<verb>.<cluster>.<namespace>`. Generated from the payload models in "
                "`opsbus.common.events.payloads` and the catalogue in `opsbus.common.events.catalog` by "
                "`make docs`; do not edit. See docs/EVENTS.md for delivery semantics and versioning."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "NATS with JetStream. Clients authenticate (user/password or nkeys).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages, "parameters": _PARAMETERS},
    }


# --- rendering, writing, checking ------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, no aliases (shared sub-dicts must not turn into `&id001` anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml(data: Any) -> str:
    header = "# Generated by `make docs` (python -m opsbus.common.events.docs --write docs). Do not edit.\n"
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=True, allow_unicode=True, width=110, default_flow_style=False)
    return header + body


def render() -> dict[Path, str]:
    """Every generated file, relative to the docs directory, with its exact content."""
    return dict(_render())


@functools.cache  # the models are fixed once imported; YAML emitting is the slow part (about a second)
def _render() -> dict[Path, str]:
    files = {SCHEMAS_DIR / f"{m.event_type}.json": _json(event_schema(m)) for m in payload_types()}
    files[ASYNCAPI_PATH] = _yaml(asyncapi_document())
    return files


def _stale(docs: Path, files: dict[Path, str]) -> list[Path]:
    stale = [
        docs / rel for rel, text in files.items() if not (docs / rel).is_file() or (docs / rel).read_text() != text
    ]
    schemas = docs / SCHEMAS_DIR
    if schemas.is_dir():
        expected = {docs / rel for rel in files}
        stale += sorted(p for p in schemas.glob("*.json") if p not in expected)  # left over from a removed type
    return stale


def check(docs: Path) -> list[Path]:
    """Paths under `docs` that are missing, different from what `render()` produces, or obsolete."""
    return _stale(docs, render())


def write(docs: Path) -> list[Path]:
    """Bring `docs` up to date; return the paths written or removed."""
    files = render()
    changed = _stale(docs, files)
    for path in changed:
        rel = path.relative_to(docs)
        if rel in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[rel])
        else:
            path.unlink()
    return changed


def _show(paths: Iterable[Path]) -> str:
    return "\n".join(f"  {p}" for p in paths)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsbus.common.events.docs", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="DOCS_DIR", type=Path, help="regenerate the files under DOCS_DIR")
    mode.add_argument("--check", metavar="DOCS_DIR", type=Path, help="exit 1 if files under DOCS_DIR are stale")
    args = parser.parse_args(argv)
    if args.write is not None:
        changed = write(args.write)
        print(f"updated {len(changed)} file(s)" + (f":\n{_show(changed)}" if changed else ""))
        return 0
    stale = check(args.check)
    if stale:
        print(
            f"event docs are stale ({len(stale)} file(s)):\n{_show(stale)}\nrun `make docs` and commit the result",
            file=sys.stderr,
        )
        return 1
    print("event docs are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
