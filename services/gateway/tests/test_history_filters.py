"""Which filter subjects the history reader asks the server for: the pattern narrowed to the caller's scope."""

from __future__ import annotations

import pytest

from opsbus.gateway.domain.access import Principal, Role, Scope
from opsbus.gateway.domain.streams import MAX_FILTERS, scoped_filters


def who(namespaces: list[str], clusters: list[str] | None = None) -> Principal:
    return Principal("apikey", "k1", Role.VIEWER, Scope.of(namespaces, clusters or ["*"]))


@pytest.mark.parametrize(
    ("pattern", "namespaces", "clusters", "expected"),
    [
        ("alert.>", ["*"], ["*"], ["alert.>"]),
        ("alert.>", ["payments"], ["*"], ["alert.*.*.payments"]),
        ("alert.fired.>", ["b", "a"], ["*"], ["alert.fired.*.a", "alert.fired.*.b"]),
        ("deploy.*.prod.>", ["a"], ["prod", "dev"], ["deploy.*.prod.a"]),
        ("deploy.*.*.a", ["a", "b"], ["prod"], ["deploy.*.prod.a"]),
        ("deploy.*.*.c", ["a", "b"], ["*"], []),
        ("alert.*.staging.*", ["*"], ["prod"], []),
        ("alert.>", ["a", "_"], ["*"], ["alert.*.*.a"]),
    ],
)
def test_patterns_are_narrowed_to_the_scope(
    pattern: str, namespaces: list[str], clusters: list[str], expected: list[str]
) -> None:
    assert scoped_filters(pattern, who(namespaces, clusters)) == expected


def test_too_many_combinations_fall_back_to_the_pattern() -> None:
    many = [f"ns-{i}" for i in range(MAX_FILTERS + 1)]
    assert scoped_filters("alert.>", who(many)) == ["alert.>"]
