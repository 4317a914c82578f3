"""What a stored bus message becomes on the way out of the gateway: a CloudEvent, decoded and re-serialised
as one JSON line, or a typed refusal that says why and reveals none of its bytes.

Anyone with publish rights on a subject decides the bytes stored under it. Copied as they are into a
Server-Sent Events `data:` line, a message containing newlines would forge frames (an `id:` and `event:` of
its author's choosing) in every subscriber's stream. So readers never copy: they show `Decoded.line`, which
`json.dumps` produces in ASCII and which therefore holds no line break of any kind (not even U+2028, which some
clients split lines on), and an SSE event name taken from the decoded `type` only when it is a plain token.
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

UNDECODABLE = "undecodable"
_REQUIRED = ("specversion", "id", "source", "type")
# An SSE event name that cannot end the line or the frame: CloudEvents types are reverse-DNS names.
_EVENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


@dataclass(frozen=True, slots=True)
class Decoded:
    """`event` and its `line` when the message is a CloudEvent; else `reason`, from a fixed vocabulary."""

    event: dict[str, Any] | None
    line: bytes = b""
    reason: str = ""

    @property
    def name(self) -> str:
        """The SSE event name: the CloudEvent's type, or `undecodable`."""
        return str(self.event["type"]) if self.event is not None else UNDECODABLE


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(data: bytes) -> Decoded:
    """The CloudEvent in a stored message (structured mode: the JSON event is the whole payload), or why not."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Decoded(None, reason="not UTF-8 JSON")
    if not isinstance(value, dict):
        return Decoded(None, reason="not a JSON object")
    for attribute in _REQUIRED:
        if not isinstance(value.get(attribute), str) or not value[attribute]:
            return Decoded(None, reason=f"not a CloudEvent: no `{attribute}` attribute")
    if not _EVENT_NAME.fullmatch(value["type"]):
        return Decoded(None, reason="not a CloudEvent: `type` is not a reverse-DNS name")
    line = json.dumps(value, separators=(",", ":")).encode()
    return Decoded(value, line=line)
