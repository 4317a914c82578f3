"""What the Server-Sent Events stream may show a caller: one stream per subscription (the pattern's family
names it, so Last-Event-ID is that stream's sequence), and per event, whether its subject's cluster and
namespace tokens are inside the caller's scope. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsbus.common.events.catalog import FAMILIES
from opsbus.common.events.subjects import SubjectError, validate_pattern
from opsbus.gateway.domain.access import CLUSTER_SCOPED, Principal, can_see


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


MAX_FILTERS = 64


def scoped_filters(pattern: str, principal: Principal) -> list[str]:
    """The server-side filter subjects that select what `pattern` matches inside the caller's scope.

    For a caller with every namespace and cluster that is the pattern itself. Otherwise it is the pattern
    narrowed to each (cluster, namespace) of the scope, e.g. `alert.>` for a caller of `payments` becomes
    `alert.*.*.payments`; combinations the pattern excludes are left out, and an empty list means the
    caller can see nothing the pattern matches. Above `MAX_FILTERS` combinations the pattern is returned
    unnarrowed (the per-event `visible()` check still applies).
    """
    tokens = pattern.split(".")
    if tokens[-1] == ">":
        tokens = (tokens[:-1] + ["*"] * 4)[:4] if len(tokens) <= 4 else tokens
    scope = principal.scope
    if scope.all_namespaces and scope.all_clusters:
        return [pattern]
    if len(tokens) != 4:
        return [pattern]
    clusters = ["*"] if scope.all_clusters else sorted(scope.clusters)
    namespaces = ["*"] if scope.all_namespaces else sorted(scope.namespaces - {CLUSTER_SCOPED})
    if len(clusters) * len(namespaces) > MAX_FILTERS:
        return [pattern]
    out: list[str] = []
    for cluster in clusters:
        for namespace in namespaces:
            narrowed = _meet(tokens[2], cluster), _meet(tokens[3], namespace)
            if None not in narrowed:
                out.append(".".join([tokens[0], tokens[1], *(t for t in narrowed if t is not None)]))
    return out


def _meet(a: str, b: str) -> str | None:
    """The token matching what both `a` and `b` match (`*` matches any one token), None when nothing does."""
    if a == "*":
        return b
    if b in {"*", a}:
        return a
    return None
