"""The informer's bookkeeping without a network: resourceVersion from lists, bookmarks and events; an ERROR 410
raises Gone; the relist after it reports only what changed meanwhile, exactly once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.events.payloads.cluster import ChangeType
from opsbus.watcher.domain.cache import Cache, Change
from opsbus.watcher.domain.objects import POD, Resource
from opsbus.watcher.watching import GoneError, Informer, KubeClient, WatchMetrics

from . import shapes as s


class FakeKube:
    def __init__(self) -> None:
        self.pages: list[dict[str, Any]] = []

    async def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.pages.pop(0)


def _list(rv: str, *pods: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv}, "items": [{**p} for p in pods]}


async def test_watch_bookkeeping_gone_and_relist_diff() -> None:
    kube = FakeKube()
    seen: list[tuple[ChangeType, str, bool]] = []

    async def on_change(resource: Resource, change: Change, initial: bool) -> None:
        seen.append((change.type, change.key, initial))

    informer = Informer(
        kube,  # type: ignore[arg-type]
        POD,
        "payments",
        cache=Cache(),
        on_change=on_change,
        metrics=WatchMetrics(CollectorRegistry()),
    )
    kube.pages = [_list("10", s.pod("a", uid="ua", rv="5"), s.pod("b", uid="ub", rv="6"))]
    await informer.relist()
    assert informer.resource_version == "10"
    assert seen == [(ChangeType.ADDED, "payments/a", True), (ChangeType.ADDED, "payments/b", True)]
    seen.clear()

    await informer.handle_line(json.dumps({"type": "MODIFIED", "object": s.pod("a", uid="ua", rv="11")}))
    await informer.handle_line(json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}))
    assert informer.resource_version == "15"
    assert seen == [(ChangeType.MODIFIED, "payments/a", False)]
    seen.clear()
    with pytest.raises(GoneError):
        await informer.handle_line(
            json.dumps(
                {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
            )
        )
    # meanwhile: a modified again, b deleted, c added; the relist reports exactly those
    kube.pages = [_list("30", s.pod("a", uid="ua", rv="20"), s.pod("c", uid="uc", rv="25"))]
    await informer.relist()
    assert sorted(seen) == sorted(
        [
            (ChangeType.MODIFIED, "payments/a", False),
            (ChangeType.DELETED, "payments/b", False),
            (ChangeType.ADDED, "payments/c", False),
        ]
    )
    assert informer.resource_version == "30"
    # a replayed event at the cached version changes nothing
    seen.clear()
    await informer.handle_line(json.dumps({"type": "ADDED", "object": s.pod("c", uid="uc", rv="25")}))
    assert seen == []


def test_kube_client_type_is_the_port() -> None:
    assert hasattr(KubeClient, "pod_log")
