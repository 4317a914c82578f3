"""API key format and hashing; the role x namespace x cluster authorization matrix; rate limiting."""

from __future__ import annotations

import itertools

import pytest

from opsbus.gateway.domain import keys
from opsbus.gateway.domain.access import ALL, Denied, Principal, Role, Scope, authorize, can_see
from opsbus.gateway.domain.ratelimit import RateLimiter


def test_minted_keys_are_random_parse_back_and_store_only_a_digest() -> None:
    a, b = keys.mint(), keys.mint()
    assert a.token != b.token and a.prefix != b.prefix
    prefix, secret = keys.parse(a.token) or ("", "")
    assert prefix == a.prefix and secret not in a.digest and len(a.digest) == 64
    assert keys.matches(secret, a.digest)
    assert not keys.matches(secret + "x", a.digest)
    assert not keys.matches(secret, b.digest)


@pytest.mark.parametrize(
    "token",
    ["", "opsb_", "opsb_xyz_abc", "Bearer opsb_0123456789_" + "a" * 43, "opsb_0123456789_" + "a" * 42, "x" * 5000],
)
def test_malformed_keys_are_refused_without_error(token: str) -> None:
    assert keys.parse(token) is None


ROLES = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
SCOPES = {
    "all": Scope(),
    "team-a": Scope.of(["team-a"], [ALL]),
    "team-a@prod": Scope.of(["team-a"], ["prod"]),
}


@pytest.mark.parametrize(
    ("role", "scope_name", "needs", "namespace", "cluster"),
    list(itertools.product(ROLES, SCOPES, ROLES, ["team-a", "team-b", None], ["prod", "staging"])),
)
def test_authorization_matrix(role: Role, scope_name: str, needs: Role, namespace: str | None, cluster: str) -> None:
    principal = Principal(kind="apikey", id="k", role=role, scope=SCOPES[scope_name])
    scope = SCOPES[scope_name]
    expected = (
        role >= needs and (scope.all_namespaces or namespace == "team-a") and (scope.all_clusters or cluster == "prod")
    )
    if expected:
        authorize(principal, needs, namespace=namespace, cluster=cluster)
    else:
        with pytest.raises(Denied):
            authorize(principal, needs, namespace=namespace, cluster=cluster)


def test_cluster_scoped_objects_need_every_namespace() -> None:
    tenant = Principal(kind="user", id="u", role=Role.ADMIN, scope=Scope.of(["team-a"], [ALL]))
    assert not can_see(tenant, namespace="_", cluster="prod")
    assert can_see(Principal(kind="user", id="u", role=Role.VIEWER), namespace="_", cluster="prod")


def test_a_scope_covers_only_narrower_scopes() -> None:
    assert Scope().covers(Scope.of(["a"], ["prod"]))
    assert Scope.of(["a", "b"], ["prod"]).covers(Scope.of(["a"], ["prod"]))
    assert not Scope.of(["a"], ["prod"]).covers(Scope.of(["a", "b"], ["prod"]))
    assert not Scope.of(["a"], ["prod"]).covers(Scope.of([ALL], ["prod"]))
    assert not Scope.of(["a"], ["prod"]).covers(Scope.of(["a"], [ALL]))


def test_rate_limiter_bursts_then_refills_at_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.check("k", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    denied = limiter.check("k", 0.0)
    assert not denied.allowed and denied.retry_after == pytest.approx(0.5)
    assert RateLimiter.retry_after_header(denied) == "1"
    assert limiter.check("k", 0.5).allowed
    assert limiter.check("other", 0.0).allowed  # per caller


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_callers=10)
    for i in range(100):
        limiter.check(f"k{i}", 0.0)
    assert len(limiter._buckets) == 10
