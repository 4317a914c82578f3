"""Traffic weights on a route object: a Gateway API `HTTPRoute` (v1) or an Istio `VirtualService`.

Why this module exists: a traffic-weighted canary shifts a share of requests to the canary's Service
independently of how many pods it has, by writing the weights of the route that carries the traffic. The route
belongs to its owner, not to opsbus: only the rules that send traffic to the stable Service are touched (their
stable and canary backends' weights, the canary backend added beside the stable one when absent); every other
rule, match, filter and backend stays as it is. Every write is a JSON patch that first tests the route's
`resourceVersion`, so an edit made between our read and our write fails the write instead of being
overwritten; and what we wrote last is compared with what the route says now, so an edit made between two of
our writes is seen (`Route.canary_weight` no longer matches) and the rollout pauses rather than overwrite it.

Pure: route objects as JSON in, patches and views out. Never imports a client.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsbus.common.events.payloads.deploy import RouterKind, TrafficRouter

# HTTPRoute: a backendRef without `weight` weighs 1; Istio: a single destination without `weight` takes it all.
_HTTPROUTE_DEFAULT_WEIGHT = 1


class RouteRefused(Exception):
    """The route cannot carry this canary: no rule sends traffic to the stable Service."""


@dataclass(frozen=True, slots=True)
class RuleWeights:
    """One managed rule: its index in the route and the stable and canary backends' weights (0: absent)."""

    index: int
    stable: int
    canary: int


@dataclass(frozen=True, slots=True)
class Route:
    """What the planner needs of a route: its version and the weights of the rules it manages."""

    resource_version: str
    rules: tuple[RuleWeights, ...]

    @property
    def canary_weight(self) -> int | None:
        """The canary's percentage when every managed rule says `100-w / w` (what opsbus writes); None when
        the rules disagree or carry other weights (someone else's edit, or a route not yet written by us)."""
        found = {(r.stable, r.canary) for r in self.rules}
        if len(found) != 1:
            return None
        stable, canary = found.pop()
        return canary if stable + canary == 100 else None

    def describe(self) -> str:
        return ", ".join(f"rule {r.index}: {r.stable}/{r.canary}" for r in self.rules) or "no managed rule"


def _rules(kind: RouterKind, route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = route.get("spec") or {}
    return list(spec.get("rules") or []) if kind is RouterKind.HTTP_ROUTE else list(spec.get("http") or [])


def _backends(kind: RouterKind, rule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(rule.get("backendRefs") or []) if kind is RouterKind.HTTP_ROUTE else list(rule.get("route") or [])


def _is_service(kind: RouterKind, backend: Mapping[str, Any], service: str) -> bool:
    if kind is RouterKind.HTTP_ROUTE:
        return (
            backend.get("name") == service
            and backend.get("kind", "Service") == "Service"
            and backend.get("group", "") in ("", "core")
        )
    host = str((backend.get("destination") or {}).get("host") or "")
    return host == service or host.startswith(f"{service}.")


def _weight(kind: RouterKind, backend: Mapping[str, Any], alone: bool) -> int:
    if "weight" in backend and backend["weight"] is not None:
        return int(backend["weight"])
    if kind is RouterKind.HTTP_ROUTE:
        return _HTTPROUTE_DEFAULT_WEIGHT
    return 100 if alone else 0


def observe(router: TrafficRouter, route: Mapping[str, Any]) -> Route:
    """The managed rules of `route` and their weights. Raises RouteRefused when no rule names the stable."""
    managed: list[RuleWeights] = []
    for index, rule in enumerate(_rules(router.kind, route)):
        backends = _backends(router.kind, rule)
        stable = [b for b in backends if _is_service(router.kind, b, router.stable_service)]
        if not stable:
            continue
        canary = [b for b in backends if _is_service(router.kind, b, router.canary_service)]
        alone = len(backends) == 1
        managed.append(
            RuleWeights(
                index=index,
                stable=sum(_weight(router.kind, b, alone) for b in stable),
                canary=sum(_weight(router.kind, b, alone) for b in canary),
            )
        )
    if not managed:
        raise RouteRefused(
            f"{router.kind.value} {route.get('metadata', {}).get('name')} has no rule sending traffic to "
            f"Service {router.stable_service}"
        )
    version = str((route.get("metadata") or {}).get("resourceVersion") or "")
    return Route(resource_version=version, rules=tuple(managed))


def _canary_backend(kind: RouterKind, stable: Mapping[str, Any], router: TrafficRouter) -> dict[str, Any]:
    """A new canary backend: the stable one's copy (same port) naming the canary Service."""
    backend = copy.deepcopy(dict(stable))
    if kind is RouterKind.HTTP_ROUTE:
        backend["name"] = router.canary_service
        return backend
    destination = dict(backend.get("destination") or {})
    host = str(destination.get("host") or router.stable_service)
    destination["host"] = router.canary_service + host[len(router.stable_service) :]
    destination.pop("subset", None)
    backend["destination"] = destination
    return backend


def _reweighted(
    kind: RouterKind, backends: Sequence[Mapping[str, Any]], router: TrafficRouter, canary_weight: int
) -> list[dict[str, Any]]:
    """The rule's backends with the stable at `100 - canary_weight` and the canary at `canary_weight`; the
    canary backend is added right after the stable one when absent; other backends are kept as they are."""
    out: list[dict[str, Any]] = []
    has_canary = any(_is_service(kind, b, router.canary_service) for b in backends)
    for backend in backends:
        if _is_service(kind, backend, router.stable_service):
            out.append({**backend, "weight": 100 - canary_weight})
            if not has_canary:
                out.append({**_canary_backend(kind, backend, router), "weight": canary_weight})
                has_canary = True
        elif _is_service(kind, backend, router.canary_service):
            out.append({**backend, "weight": canary_weight})
        else:
            out.append(dict(backend))
    return out


def weight_patch(router: TrafficRouter, route: Mapping[str, Any], canary_weight: int) -> list[dict[str, Any]]:
    """One JSON patch that sets every managed rule to `100 - canary_weight / canary_weight`, guarded by a test
    of the `resourceVersion` that was read (the apiserver refuses it when the route changed since)."""
    if not 0 <= canary_weight <= 100:
        raise ValueError(f"canary weight {canary_weight} outside 0..100")
    view = observe(router, route)
    field = "rules" if router.kind is RouterKind.HTTP_ROUTE else "http"
    key = "backendRefs" if router.kind is RouterKind.HTTP_ROUTE else "route"
    rules = _rules(router.kind, route)
    patch: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": view.resource_version}]
    for managed in view.rules:
        backends = _reweighted(router.kind, _backends(router.kind, rules[managed.index]), router, canary_weight)
        patch.append({"op": "replace", "path": f"/spec/{field}/{managed.index}/{key}", "value": backends})
    return patch
