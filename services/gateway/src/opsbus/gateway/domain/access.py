"""Who may do what, where: roles viewer < operator < admin, each scoped to namespaces and clusters.

Keptn had one shared token and "everyone sees everything"; here every handler asks `authorize()` with the
level the operation needs and the namespace and cluster it touches, and list queries narrow themselves with
`visible_namespaces()`. `*` in a scope means every namespace (or cluster). Cluster-scoped objects (nodes,
namespace `_`) are visible only to principals whose namespace scope is `*`: a node concerns every tenant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

ALL = "*"
CLUSTER_SCOPED = "_"


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"unknown role {value!r}: use viewer, operator or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Scope:
    namespaces: frozenset[str] = frozenset({ALL})
    clusters: frozenset[str] = frozenset({ALL})

    @classmethod
    def of(cls, namespaces: Iterable[str], clusters: Iterable[str]) -> Scope:
        return cls(frozenset(namespaces), frozenset(clusters))

    @property
    def all_namespaces(self) -> bool:
        return ALL in self.namespaces

    @property
    def all_clusters(self) -> bool:
        return ALL in self.clusters

    def covers_namespace(self, namespace: str | None) -> bool:
        if self.all_namespaces:
            return True
        if namespace is None or namespace == CLUSTER_SCOPED:
            return False
        return namespace in self.namespaces

    def covers_cluster(self, cluster: str | None) -> bool:
        if self.all_clusters:
            return True
        return cluster is not None and cluster in self.clusters

    def covers(self, other: Scope) -> bool:
        """Whether every namespace and cluster of `other` is inside this scope (a key may not out-scope its maker)."""
        ns = self.all_namespaces or (not other.all_namespaces and other.namespaces <= self.namespaces)
        cl = self.all_clusters or (not other.all_clusters and other.clusters <= self.clusters)
        return ns and cl


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: an API key or an OIDC subject."""

    kind: str  # "apikey" | "user"
    id: str
    role: Role
    scope: Scope = field(default_factory=Scope)
    display_name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"


class Denied(Exception):
    """The principal may not do this (403). `hidden` asks the caller to answer 404 instead, not to reveal it."""

    def __init__(self, reason: str, *, hidden: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hidden = hidden


def authorize(principal: Principal, needs: Role, *, namespace: str | None, cluster: str | None) -> None:
    """Raise `Denied` unless `principal` has role >= `needs` on `namespace` in `cluster`.

    `namespace=None` means a cluster-wide object or operation (policies, routes, nodes).
    """
    if principal.role < needs:
        raise Denied(f"role {principal.role} may not do this: it needs {needs}")
    if not principal.scope.covers_cluster(cluster):
        raise Denied(f"not allowed in cluster {cluster or '(all clusters)'}")
    if not principal.scope.covers_namespace(namespace):
        where = "cluster-wide objects" if namespace in (None, CLUSTER_SCOPED) else f"namespace {namespace}"
        raise Denied(f"not allowed on {where}")


def can_see(principal: Principal, *, namespace: str | None, cluster: str | None) -> bool:
    return principal.scope.covers_namespace(namespace) and principal.scope.covers_cluster(cluster)


def visible_namespaces(principal: Principal) -> frozenset[str] | None:
    """None when every namespace is visible; else the set to filter queries by."""
    return None if principal.scope.all_namespaces else principal.scope.namespaces


def visible_clusters(principal: Principal) -> frozenset[str] | None:
    return None if principal.scope.all_clusters else principal.scope.clusters
