"""What the Server-Sent Events stream may show a caller: one stream per subscription (the pattern's family
names it, so Last-Event-ID is that stream's sequence), and per event, whether its subject's cluster and
namespace tokens are inside the caller's scope. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsbus.common.events.catalog import FAMILIES
from opsbus.common.events.subjects import SubjectError, validate_pattern
from opsbus.gateway.domain.access import Principal, can_see


class PatternError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Subscription:
    pattern: str
    stream: str


def subscription(pattern: str) -> Subscription:
    """Validate `pattern` and find its stream; the family (first token) must be named, not a wildcard."""
    try:
        validate_pattern(pattern)
    except SubjectError as exc:
        raise PatternError(str(exc)) from None
    tokens = pattern.split(".")
    family = tokens[0]
    if family in {"*", ">"}:
        raise PatternError("the pattern must name an event family first, e.g. `alert.>` or `deploy.*.*.payments`")
    families = {f.name: f for f in FAMILIES}
    if family not in families:
        raise PatternError(f"unknown event family {family!r}: one of {', '.join(sorted(families))}")
    if tokens[-1] != ">" and len(tokens) != 4:
        raise PatternError("a pattern has 4 tokens <family>.<verb>.<cluster>.<namespace>, or ends with `>`")
    return Subscription(pattern=pattern, stream=families[family].stream)


def visible(principal: Principal, subject: str) -> bool:
    """Whether the event published on `subject` may be shown to `principal`."""
    parts = subject.split(".")
    if len(parts) != 4:
        return False
    return can_see(principal, namespace=parts[3], cluster=parts[2])
