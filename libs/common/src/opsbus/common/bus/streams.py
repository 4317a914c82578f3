"""Stream provisioning: create or update every opsbus stream so it matches the catalogue.

Idempotent: run it at every service start (any replica may); a stream whose configuration drifted is
updated in place, one that matches is left alone, and one that sources others (a fleet's, `bus.fleet`) is
left as provisioned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from opsbus.common.events.catalog import ALL_STREAMS, Family

log = logging.getLogger(__name__)


def stream_config(family: Family, *, replicas: int, duplicate_window: float) -> StreamConfig:
    return StreamConfig(
        name=family.stream,
        description=family.description,
        subjects=[family.subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=family.retention.total_seconds(),
        num_replicas=replicas,
        duplicate_window=duplicate_window,
        allow_direct=True,
    )


async def ensure_streams(
    js: JetStreamContext,
    *,
    replicas: int = 1,
    duplicate_window: float = 120.0,
    families: Iterable[Family] = ALL_STREAMS,
) -> list[str]:
    """Create or update the streams; returns what was done, one line per stream."""
    done: list[str] = []
    for family in families:
        wanted = stream_config(family, replicas=replicas, duplicate_window=duplicate_window)
        try:
            info = await js.stream_info(family.stream)
        except NotFoundError:
            await js.add_stream(wanted)
            done.append(f"created {family.stream}")
            continue
        current = info.config
        if current.sources:  # a fleet's stream: its layout is `bus.fleet`'s, a service's start must not undo it
            done.append(f"kept {family.stream} (sourced)")
            continue
        drifted = (
            list(current.subjects or []) != wanted.subjects
            or current.max_age != wanted.max_age
            or current.duplicate_window != wanted.duplicate_window
            or current.num_replicas != wanted.num_replicas
            or current.description != wanted.description
        )
        if drifted:
            await js.update_stream(wanted)
            done.append(f"updated {family.stream}")
        else:
            done.append(f"unchanged {family.stream}")
    log.info("streams: %s", ", ".join(done))
    return done
