"""Wiring of the watcher: bus, apiserver client, informers, engine, readiness and shutdown order."""

from __future__ import annotations

import asyncio
import logging

from opsbus.common.bus import Bus
from opsbus.common.runtime import Runtime
from opsbus.watcher.domain.objects import RESOURCES, SECRET
from opsbus.watcher.executing import Engine, read_firing
from opsbus.watcher.prometheus import PrometheusSource, SaturationLoop
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import Informer, InformerOptions, KubeClient, WatchMetrics

log = logging.getLogger(__name__)


async def setup(rt: Runtime[WatcherSettings]) -> None:
    settings = rt.settings
    opts = settings.watcher
    bus = await rt.open_bus()
    kube = KubeClient.from_config(opts.kubeconfig, timeout=opts.request_timeout_seconds)
    rt.on_shutdown(kube.close, "kube")
    watcher = await start(settings, bus, kube, rt.registry)
    rt.add_check("informers", lambda: watcher.engine.synced)
    rt.on_shutdown(watcher.stop, "watcher")
    if opts.prometheus.url:
        source = PrometheusSource(opts.prometheus)
        rt.on_shutdown(source.close, "prometheus")
        loop = SaturationLoop(
            source, cluster=settings.cluster, apply=watcher.engine.set_saturation, cache=watcher.engine.cache
        )
        rt.every("saturation", opts.prometheus.interval_seconds, loop.run_once)
        log.info("saturation rules on: %s every %.0fs", opts.prometheus.url, opts.prometheus.interval_seconds)
    else:
        log.info("saturation rules off: no OPSBUS_WATCHER__PROMETHEUS__URL")


class Watcher:
    """The running watcher: informers feeding one engine."""

    def __init__(self, engine: Engine, informers: list[Informer]) -> None:
        self.engine = engine
        self.informers = informers
        self.tasks: list[asyncio.Task[None]] = []

    async def stop(self, grace: float = 10.0) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            _, stuck = await asyncio.wait(self.tasks, timeout=grace)
            for task in stuck:
                log.error("watcher task %s did not stop within %.0fs of being cancelled", task.get_name(), grace)
        self.tasks.clear()


async def start(settings: WatcherSettings, bus: Bus, kube: KubeClient, registry: object) -> Watcher:
    """Restore firing alerts, start the informers, wait for the first sync, start detection."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    assert isinstance(registry, CollectorRegistry)
    opts = settings.watcher
    engine = Engine(cluster=settings.cluster, options=opts, sender=bus.publisher, logs=kube, registry=registry)
    if opts.restore_from_stream:
        restored = await read_firing(bus.js, settings.cluster)
        engine.book.restore(restored, engine.clock())
        for payload, _, _ in restored:
            engine.metrics.firing.labels(payload.alertname).inc()
        log.info("restored %d firing alerts from the ALERT stream", len(restored))
    metrics = WatchMetrics(registry)
    informer_opts = InformerOptions(
        watch_timeout_seconds=opts.watch_timeout_seconds,
        page_size=opts.list_page_size,
        backoff_initial=opts.backoff_initial_seconds,
        backoff_max=opts.backoff_max_seconds,
    )
    informers: list[Informer] = []
    for resource in RESOURCES:
        if resource is SECRET and not opts.watch_secrets:
            continue  # OPSBUS_WATCHER__WATCH_SECRETS=false: no Secret list/watch, no Secret digests
        scopes: list[str | None] = list(opts.namespaces) if (resource.namespaced and opts.namespaces) else [None]
        for ns in scopes:
            informers.append(
                Informer(
                    kube,
                    resource,
                    ns,
                    cache=engine.cache,
                    on_change=engine.on_change,
                    metrics=metrics,
                    options=informer_opts,
                )
            )
    watcher = Watcher(engine, informers)
    watcher.tasks = [asyncio.create_task(i.run(), name=f"watch:{i.label}:{i.namespace or '*'}") for i in informers]
    sync = asyncio.gather(*(i.synced.wait() for i in informers))
    await sync
    engine.synced = True
    watcher.tasks.append(asyncio.create_task(engine.run(), name="watcher:engine"))
    log.info("informers synced: %d objects cached", len(engine.cache))
    return watcher
