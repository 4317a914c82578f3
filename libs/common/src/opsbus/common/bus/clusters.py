"""Durable consumers of per-cluster services: a name that carries the cluster, and the move from the old name.

Several clusters share one bus (docs/ARCHITECTURE.md, "Fleet"): the watcher, healer, optimizer and deployer of
cluster `east` and those of `west` may read the same JetStream. A durable consumer is shared by every replica
that binds its name, so two clusters' healers on one fixed name (`healer-alerts`) would take each other's
alerts. Each per-cluster consumer is therefore named `<purpose>-<cluster>` (`healer-alerts-east`) and filters
on its cluster's subjects; the central services (gateway, notifier, analyzer) keep one name for all clusters.

Installs from before the fleet have consumers under the bare name. A new consumer would start at the first
message of its stream (30 days of alerts replayed), so the first time a clustered consumer is created while
its old one exists, it starts just after the old consumer's acknowledged floor: nothing is skipped, nothing
older is replayed, and what the old one had delivered but not acknowledged is delivered once more (handlers
are idempotent). The old consumer is left in place, never deleted here: replicas of the previous version may
still be reading it during a rolling upgrade. Its start is logged with the command that removes it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError

from opsbus.common.events.subjects import validate_token

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from opsbus.common.bus.consuming import ConsumerSpec

log = logging.getLogger(__name__)


def clustered(base: str, cluster: str) -> str:
    """The durable name of consumer `base` for `cluster`: `healer-alerts` -> `healer-alerts-east`."""
    validate_token(cluster, what="cluster name")
    return f"{base}-{cluster}"


def for_cluster(spec: ConsumerSpec, cluster: str) -> ConsumerSpec:
    """`spec` as the consumer of one cluster: its name carries the cluster, its old name is kept for the move.

    The filter subjects are the caller's (they already name the cluster); this refuses a spec that does not.
    """
    for subject in spec.subjects:
        tokens = subject.split(".")
        if len(tokens) < 3 or tokens[2] != cluster:  # <family>.<verb>.<cluster>...
            raise ValueError(f"consumer {spec.durable}: filter {subject!r} is not on cluster {cluster!r}")
    return dataclasses.replace(spec, durable=clustered(spec.durable, cluster), legacy_durable=spec.durable)


async def start_after_legacy(js: JetStreamContext, spec: ConsumerSpec) -> int | None:
    """The stream sequence a new clustered consumer starts at when its old consumer exists, else None."""
    if spec.legacy_durable is None:
        return None
    try:
        old = await js.consumer_info(spec.stream, spec.legacy_durable)
    except NotFoundError:
        return None
    start = old.ack_floor.stream_seq + 1 if old.ack_floor and old.ack_floor.stream_seq is not None else 1
    log.warning(
        "consumer %s on %s: created from the old consumer %s (starts at stream sequence %d, after what it had "
        "acknowledged). Once no replica of the previous version runs, delete it: nats consumer rm %s %s",
        spec.durable,
        spec.stream,
        spec.legacy_durable,
        start,
        spec.stream,
        spec.legacy_durable,
    )
    return start
