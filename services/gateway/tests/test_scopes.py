"""The gateway's one rule for subject patterns (`domain.scopes`): examples, then properties over generated
patterns, subjects and scopes, checked against a reference NATS matcher written independently (a regular
expression) and against every subject of a finite universe that holds each token the generators use plus one
they never name."""

from __future__ import annotations

import functools
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsbus.gateway.domain.access import Denied, Scope
from opsbus.gateway.domain.scopes import Grant, PatternError, grant, in_scope, matches

FAMILIES = ["alert", "deploy"]
VERBS = ["fired", "resolved"]
CLUSTERS = ["prod", "dev", "edge"]
NAMESPACES = ["a", "b", "c", "_"]
OTHER = "zz"  # a token no pattern names: stands for every other value
LITERALS = sorted({*FAMILIES, *VERBS, *CLUSTERS, *NAMESPACES, "x"})


@functools.cache
def reference(pattern: str) -> re.Pattern[str]:
    """NATS matching as a regular expression: `*` one token, a final `>` one or more, the rest literal."""
    parts = pattern.split(".")
    return re.compile(r"\.".join("[^.]+" if t == "*" else ".+" if t == ">" and i == len(parts) - 1
                                 else re.escape(t) for i, t in enumerate(parts)))  # fmt: skip


def reference_matches(pattern: str, subject: str) -> bool:
    return reference(pattern).fullmatch(subject) is not None


def reference_in_scope(scope: Scope, subject: str) -> bool:
    tokens = subject.split(".")
    if len(tokens) != 4:
        return False
    cluster_ok = "*" in scope.clusters or tokens[2] in scope.clusters
    namespace_ok = "*" in scope.namespaces or (tokens[3] != "_" and tokens[3] in scope.namespaces)
    return cluster_ok and namespace_ok


FOUR = [
    ".".join(t)
    for t in itertools.product([*FAMILIES, OTHER], [*VERBS, OTHER], [*CLUSTERS, OTHER], [*NAMESPACES, OTHER])
]
UNIVERSE = [*FOUR, *(s.rsplit(".", 1)[0] for s in FOUR[::7]), *(f"{s}.x" for s in FOUR[::5]), "alert", "alert.x.y"]

patterns = st.builds(
    lambda tokens, rest: ".".join([*tokens, ">"] if rest or not tokens else tokens),
    st.lists(st.sampled_from([*LITERALS, "*"]), max_size=6),
    st.booleans(),
)
positional = st.builds(
    lambda f, v, c, n, tail: ".".join([f, v, c, n, *tail]),
    st.sampled_from([*FAMILIES, "*"]),
    st.sampled_from([*VERBS, "*"]),
    st.sampled_from([*CLUSTERS, "*", ">"]),
    st.sampled_from([*NAMESPACES, "*", ">"]),
    st.lists(st.sampled_from(["x", "*", ">"]), max_size=2),
).filter(lambda p: ">" not in p.split(".")[:-1])
any_pattern = st.one_of(patterns, positional, st.sampled_from(["alert.>", "alert.*.*.a", "deploy.*.prod.>"]))
subjects = st.one_of(
    st.sampled_from(UNIVERSE), st.lists(st.sampled_from([*LITERALS, OTHER]), min_size=1, max_size=6).map(".".join)
)
scopes = st.builds(
    Scope.of,
    st.sets(st.sampled_from([*NAMESPACES, "*"]), max_size=4),
    st.sets(st.sampled_from([*CLUSTERS, "*"]), max_size=3),
)


@given(any_pattern, subjects)
@settings(max_examples=600, deadline=None)
def test_the_matcher_agrees_with_nats_matching(pattern: str, subject: str) -> None:
    assert matches(pattern, subject) == reference_matches(pattern, subject)


def shown(g: Grant, scope: Scope, subject: str) -> bool:
    """Whether a reader following `g` shows `subject`: a filter selects it, and `in_scope` when not exact."""
    return any(reference_matches(f, subject) for f in g.filters) and (g.exact or in_scope(scope, subject))


@given(any_pattern, scopes, st.sampled_from([1, 3, 256]))
@settings(max_examples=600, deadline=None)
def test_no_granted_pattern_reaches_a_subject_out_of_scope_and_none_in_scope_is_lost(
    pattern: str, scope: Scope, max_filters: int
) -> None:
    reachable = [s for s in UNIVERSE if reference_matches(pattern, s) and reference_in_scope(scope, s)]
    try:
        g = grant(pattern, scope, max_filters=max_filters)
    except PatternError:
        named = pattern.split(".", maxsplit=1)[0] in FAMILIES
        assert not named or not any(reference_matches(pattern, s) for s in FOUR), pattern
        return
    except Denied:
        assert reachable == [], (pattern, scope)  # refused only when the pattern reaches nothing of the caller's
        return
    for subject in UNIVERSE:
        if shown(g, scope, subject):
            assert reference_in_scope(scope, subject), (pattern, scope, g, subject)
            assert reference_matches(pattern, subject), (pattern, g, subject)  # narrowed, never widened
        if g.exact and any(reference_matches(f, subject) for f in g.filters):
            assert reference_in_scope(scope, subject), (pattern, scope, g, subject)
    assert all(shown(g, scope, s) for s in reachable), (pattern, scope, g)
    assert len(g.filters) <= max(1, max_filters)


@given(subjects, scopes)
def test_in_scope_is_the_reference_scope(subject: str, scope: Scope) -> None:
    assert in_scope(scope, subject) == reference_in_scope(scope, subject)


def scope(namespaces: list[str], clusters: list[str] | None = None) -> Scope:
    return Scope.of(namespaces, clusters or ["*"])


@pytest.mark.parametrize(
    ("pattern", "namespaces", "clusters", "filters"),
    [
        ("alert.>", ["*"], ["*"], ("alert.*.*.*",)),
        ("alert.fired.prod.payments", ["*"], ["*"], ("alert.fired.prod.payments",)),
        ("alert.>", ["payments"], ["*"], ("alert.*.*.payments",)),
        ("alert.fired.>", ["b", "a"], ["*"], ("alert.fired.*.a", "alert.fired.*.b")),
        ("deploy.*.prod.>", ["a"], ["prod", "dev"], ("deploy.*.prod.a",)),
        ("deploy.*.*.a", ["a", "b"], ["prod"], ("deploy.*.prod.a",)),
        ("alert.>", ["a", "_"], ["*"], ("alert.*.*.a",)),
        ("alert.*.*.>", ["*"], ["prod"], ("alert.*.prod.*",)),
    ],
)
def test_patterns_are_narrowed_to_the_scope(
    pattern: str, namespaces: list[str], clusters: list[str], filters: tuple[str, ...]
) -> None:
    g = grant(pattern, scope(namespaces, clusters))
    assert g.filters == filters and g.exact


@pytest.mark.parametrize(
    ("pattern", "namespaces", "clusters", "reason"),
    [
        ("alert.fired.prod.team-b", ["team-a"], ["*"], "namespace team-b"),
        ("alert.fired.prod.team-b.>", ["team-a"], ["*"], "namespace team-b"),  # the five-token bypass of issue 28
        ("alert.fired.prod.team-b.x.y", ["team-a"], ["*"], "namespace team-b"),
        ("alert.*.staging.*", ["*"], ["prod"], "cluster staging"),
        ("alert.*.staging.>", ["*"], ["prod"], "cluster staging"),
        ("alert.fired.prod._", ["team-a"], ["*"], "cluster-wide objects"),
        ("alert.>", ["_"], ["*"], "no namespace"),
        ("alert.>", [], ["*"], "no namespace"),
    ],
)
def test_patterns_naming_what_is_out_of_scope_are_refused(
    pattern: str, namespaces: list[str], clusters: list[str], reason: str
) -> None:
    with pytest.raises(Denied, match=reason):
        grant(pattern, scope(namespaces, clusters))


@pytest.mark.parametrize(
    "pattern",
    ["*.>", ">", "nope.>", "alert.fired", "alert..x.y", "alert.>.x", "alert.fi red.>", "alert.f*.prod.a",
     "alert.fired.prod.a.>", "alert.fired.prod.a.b", "dlq.>"],
)  # fmt: skip
def test_invalid_patterns_and_patterns_matching_no_opsbus_subject_are_pattern_errors(pattern: str) -> None:
    with pytest.raises(PatternError):
        grant(pattern, scope(["*"]))


def test_above_max_filters_the_grant_says_it_is_not_exact() -> None:
    many = scope([f"ns-{i}" for i in range(10)], ["prod", "dev"])
    g = grant("alert.>", many, max_filters=19)
    assert g.filters == ("alert.*.*.*",) and not g.exact
    assert grant("alert.>", many, max_filters=20).exact
    assert g.stream == "ALERT" and grant("deploy.*.*.ns-1", many).stream == "DEPLOY"
