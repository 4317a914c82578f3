"""The one place the gateway decides which bus subjects a caller may read through a subject pattern.

Every reader of the streams (`GET /v1/events`, `GET /v1/events/stream`) asks `grant()` before it reads and
`in_scope()` for every message it is about to show. Nothing else in the gateway interprets a pattern.

Subjects are `<family>.<verb>.<cluster>.<namespace>` (DESIGN.md section 2); patterns follow NATS matching:
`*` matches exactly one token, `>` one or more tokens and only as the last token. A subject is inside a
caller's scope when it has exactly those four tokens and its cluster and namespace tokens are covered by the
caller's (cluster, namespace) scope; a subject of any other shape is inside no scope, so a new subject shape
stays invisible until this module learns it (fail closed). The rule, in order:

1. A pattern that is not valid NATS syntax, does not name a known family first, or cannot match any
   four-token subject (`alert.fired.prod.payments.>`) is a `PatternError` (400).
2. A pattern that names a cluster or namespace outside the scope, in the third or fourth token, whatever
   its length, is `Denied` (403): every subject it can match is someone else's.
3. Otherwise the pattern is narrowed, never widened: it is rewritten as four tokens (`alert.>` ->
   `alert.*.*.*`) and each `*` in the cluster or namespace position becomes one filter per cluster or
   namespace of the scope (`alert.>` for a key of namespaces [a, b] in every cluster -> `alert.*.*.a`,
   `alert.*.*.b`). JetStream consumers take several filter subjects, so the server delivers only what the
   caller may see. Above `MAX_FILTERS` combinations the grant keeps the four-token pattern and says it is not
   `exact`: the reader then drops each message outside the scope itself. The cluster-scoped namespace `_`
   is in scope only for callers of every namespace. A scope with nothing left (`_` only) is `Denied`.

Pure: no I/O. The property-based tests (services/gateway/tests/test_scopes.py) check that every subject a
grant's filters match is in scope and matched by the pattern, and that `matches` agrees with NATS.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from opsbus.common.events.catalog import FAMILIES
from opsbus.common.events.subjects import SubjectError, validate_pattern
from opsbus.gateway.domain.access import CLUSTER_SCOPED, Denied, Scope

ONE = "*"
REST = ">"
SUBJECT_TOKENS = 4  # family, verb, cluster, namespace
CLUSTER, NAMESPACE = 2, 3  # token positions
MAX_FILTERS = 256
_STREAMS = {f.name: f.stream for f in FAMILIES}


class PatternError(ValueError):
    """The pattern is not a valid opsbus subject pattern (400)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a caller may read through `pattern`: the stream, and the filter subjects to ask the server for.

    `exact`: the filters select only subjects in scope. When false, a reader must check `in_scope()`
    for each message (it should anyway: the check is cheap and the filters are the first line only).
    """

    pattern: str
    stream: str
    filters: tuple[str, ...]
    exact: bool


def tokens_of(pattern: str) -> list[str]:
    """The tokens of a valid pattern that names a known family first; `PatternError` otherwise."""
    try:
        validate_pattern(pattern)
    except SubjectError as exc:
        raise PatternError(str(exc)) from None
    tokens = pattern.split(".")
    if tokens[0] in {ONE, REST}:
        raise PatternError("the pattern must name an event family first, e.g. `alert.>` or `deploy.*.*.payments`")
    if tokens[0] not in _STREAMS:
        raise PatternError(f"unknown event family {tokens[0]!r}: one of {', '.join(sorted(_STREAMS))}")
    return tokens


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` is one or more tokens, anything else is literal."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == REST and index == len(want) - 1:
            return len(have) > index
        if index >= len(have) or (token != ONE and token != have[index]):
            return False
    return len(want) == len(have)


def in_scope(scope: Scope, subject: str) -> bool:
    """Whether a message published on `subject` may be shown to a caller of `scope`."""
    tokens = subject.split(".")
    if len(tokens) != SUBJECT_TOKENS or ONE in tokens or REST in tokens:
        return False
    return scope.covers_cluster(tokens[CLUSTER]) and scope.covers_namespace(tokens[NAMESPACE])


def grant(pattern: str, scope: Scope, *, max_filters: int = MAX_FILTERS) -> Grant:
    """Apply the module's rule to `pattern` for a caller of `scope`: a `Grant`, or `PatternError`/`Denied`."""
    tokens = tokens_of(pattern)
    _refuse_named_outsiders(tokens, scope)
    shape = _four_tokens(tokens, pattern)
    clusters = _choices(shape[CLUSTER], None if scope.all_clusters else scope.clusters)
    namespaces = _choices(shape[NAMESPACE], None if scope.all_namespaces else scope.namespaces - {CLUSTER_SCOPED})
    if not namespaces or not clusters:
        raise Denied("your scope holds no namespace this pattern can match")
    stream = _STREAMS[tokens[0]]
    if len(clusters) * len(namespaces) > max_filters:
        return Grant(pattern, stream, (".".join(shape),), exact=False)
    filters = tuple(f"{shape[0]}.{shape[1]}.{c}.{n}" for c, n in product(clusters, namespaces))
    return Grant(pattern, stream, filters, exact=True)


def _refuse_named_outsiders(tokens: list[str], scope: Scope) -> None:
    if len(tokens) > CLUSTER and tokens[CLUSTER] not in {ONE, REST} and not scope.covers_cluster(tokens[CLUSTER]):
        raise Denied(f"not allowed in cluster {tokens[CLUSTER]}")
    named = tokens[NAMESPACE] if len(tokens) > NAMESPACE else ONE
    if named not in {ONE, REST} and not scope.covers_namespace(named):
        where = "cluster-wide objects (namespace `_`)" if named == CLUSTER_SCOPED else f"namespace {named}"
        raise Denied(f"not allowed on {where}")


def _four_tokens(tokens: list[str], pattern: str) -> list[str]:
    """The pattern as four tokens matching the same four-token subjects; `PatternError` when it matches none."""
    if tokens[-1] == REST and len(tokens) <= SUBJECT_TOKENS:
        return [*tokens[:-1], *[ONE] * (SUBJECT_TOKENS + 1 - len(tokens))]
    if len(tokens) == SUBJECT_TOKENS:
        return tokens
    raise PatternError(
        f"pattern {pattern!r} matches no opsbus subject: subjects have 4 tokens "
        "<family>.<verb>.<cluster>.<namespace>; end a shorter pattern with `>`"
    )


def _choices(token: str, allowed: frozenset[str] | None) -> list[str]:
    """The values a cluster or namespace token takes in the filters: itself, or `*` narrowed to `allowed`."""
    if token != ONE or allowed is None:
        return [token]
    return sorted(allowed)
