"""Request and response models of `opsbus.svc.deployer.{status,history,recent,replicasets,abort,promote}`.

They live in `opsbus.common.api.deployer` (DESIGN.md section 2: the gateway calls them); this module names
them for the deployer's own code so there is one definition on the wire.
"""

from __future__ import annotations

from opsbus.common.api.deployer import (
    CommandRequest,
    HistoryRequest,
    HistoryResponse,
    RecentRequest,
    ReplicaSetsResponse,
    ReplicaSetView,
    RevisionView,
    RolloutList,
    RolloutSelector,
    RolloutView,
)

__all__ = [
    "CommandRequest",
    "HistoryRequest",
    "HistoryResponse",
    "RecentRequest",
    "ReplicaSetView",
    "ReplicaSetsResponse",
    "RevisionView",
    "RolloutList",
    "RolloutSelector",
    "RolloutView",
]
