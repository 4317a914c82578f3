"""The notifier's executor: the one object the service wires, composed of the notifier's working parts.

It applies the planners' decisions to PostgreSQL, the channels and the outbox in three steps, each its own
transaction, so a crash anywhere loses nothing and doubles nothing:

1. `ingesting` (per consumed event): inbox claim, then each matched route's group row is locked and written.
2. `flushing` (the loop): due groups are claimed with `FOR UPDATE SKIP LOCKED` and turned into notification
   rows (unique on group key, epoch, sequence, integration), with silences and inhibition applied, the alerts'
   outcome rows (`domain/outcomes.py`) and the audit entries of muted alerts in the same transaction.
3. `delivering` (the loop): due notification rows are leased, sent, and their outcome (delivered, retry,
   dead letter), delivery log row, `notify.*` event and audit entry committed together.

Beside them: `silencing` (silences and their audit), `emitting` (the outbox writes all of them share) and
`scheduling` (the one loop that runs the passes and the invariant check, `accounting.check`). This module
only builds them over shared ports (database, configuration in force, channels, clock) and offers the
operations the service, the configuration reloader and the tests call. It decides and writes nothing itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from opsbus.common.api.calling import Caller
from opsbus.common.audit import Auditor
from opsbus.common.bus import Delivery
from opsbus.common.store import Database
from opsbus.notifier import accounting
from opsbus.notifier.accounting import AccountingMetrics
from opsbus.notifier.channels import Channel
from opsbus.notifier.delivering import Deliverer, DeliveryMetrics, Ports, Timing
from opsbus.notifier.domain.config import NotifierConfig
from opsbus.notifier.domain.delivery import RetryPolicy
from opsbus.notifier.domain.muting import Silence
from opsbus.notifier.emitting import Emitter
from opsbus.notifier.flushing import Flusher, FlushMetrics
from opsbus.notifier.ingesting import Ingester
from opsbus.notifier.ratelimits import SharedRateLimiter
from opsbus.notifier.scheduling import InvariantCheck, Loop
from opsbus.notifier.silencing import Silences


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease: timedelta = timedelta(seconds=60)
    batch: int = 50
    tick: float = 0.5
    unaccounted_after: timedelta = timedelta(minutes=15)  # the invariant's bound past a row's due time
    check_every: float = 30.0  # seconds between two invariant checks
    check_limit: int = 10_000  # the check counts at most this many rows (bounded cost)


def _now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(
        self,
        db: Database,
        config: NotifierConfig,
        channels: Mapping[str, Mapping[str, Channel]],
        *,
        auditor: Auditor,
        cluster: str,
        registry: CollectorRegistry,
        options: ExecutorOptions | None = None,
        clock: Callable[[], datetime] = _now,
        rand: Callable[[], float] = random.random,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.channels = channels
        self.auditor = auditor
        self.cluster = cluster
        self.options = opts = options or ExecutorOptions()
        self.clock = clock
        self.rand = rand
        self.accounting = AccountingMetrics(registry)
        self.limiter = SharedRateLimiter(db, clock)
        emitter = Emitter(on_outbox)
        self.invariant = InvariantCheck(
            db, self.accounting, clock=clock, bound=opts.unaccounted_after, limit=opts.check_limit
        )
        self.loop = Loop(
            run_once=self.run_once, check=self.check_invariant, tick=opts.tick, check_every=opts.check_every
        )
        self.ingester = Ingester(db, config=self._config, clock=clock, wake=self.loop.wake)
        self.flusher = Flusher(
            db,
            config=self._config,
            auditor=auditor,
            emitter=emitter,
            metrics=FlushMetrics(registry),
            accounting_metrics=self.accounting,
            clock=clock,
            wake=self.loop.wake,
            batch=opts.batch,
        )
        self.deliverer = Deliverer(
            Ports(
                db=db,
                config=self._config,
                channels=self._channels,
                limiter=self.limiter,
                auditor=auditor,
                emitter=emitter,
                metrics=DeliveryMetrics(registry),
                cluster=cluster,
            ),
            Timing(
                clock=clock, rand=rand, wake_in=self.loop.wake_in, retry=opts.retry, lease=opts.lease, batch=opts.batch
            ),
        )
        self.silences = Silences(db, auditor=auditor, emitter=emitter, clock=clock)

    def _config(self) -> NotifierConfig:
        return self.config

    def _channels(self) -> Mapping[str, Mapping[str, Channel]]:
        return self.channels

    def apply_config(self, config: NotifierConfig, channels: Mapping[str, Mapping[str, Channel]]) -> None:
        """Put a new routing configuration in force (groups already open keep their options until flushed)."""
        self.config, self.channels = config, channels
        self.wake()

    # --- the steps ---------------------------------------------------------------------------------
    async def handle(self, delivery: Delivery) -> None:
        """Consumer handler: route the event into its groups (idempotent through the inbox)."""
        await self.ingester.handle(delivery)

    async def flush_due(self) -> int:
        """Flush the groups whose time has come; the number of notifications queued."""
        return await self.flusher.flush_due()

    async def deliver_due(self) -> int:
        """Send the notifications whose attempt is due; the number of attempts made."""
        return await self.deliverer.deliver_due()

    async def run_once(self) -> tuple[int, int]:
        return await self.flush_due(), await self.deliver_due()

    async def check_invariant(self) -> accounting.Unaccounted:
        """Count routed alerts still open past their due time plus the bound, into the gauge (and the log)."""
        return await self.invariant.check()

    # --- silences ----------------------------------------------------------------------------------
    async def create_silence(  # noqa: PLR0917 - the silence's fields, then who asked
        self,
        matchers: list[str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
        caller: Caller | None = None,
    ) -> Silence:
        return await self.silences.create(matchers, starts_at, ends_at, created_by, comment, caller)

    async def list_silences(self) -> list[Silence]:
        return await self.silences.list_all()

    async def expire_silence(self, silence_id: str, expired_by: str, caller: Caller | None = None) -> Silence:
        return await self.silences.expire(silence_id, expired_by, caller)

    # --- the loop ----------------------------------------------------------------------------------
    def wake(self) -> None:
        self.loop.wake()

    async def start(self) -> None:
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()
