"""Taking the analysis measurements that are due: ask the provider of each due metric, classify the answers.

Why this module exists: every strategy measures the same way (background analysis of a rolling update, a
canary step's analysis, blue-green's pre- and post-promotion analysis); the pure `analysis` planner says which
metrics are due and what an answer means, this module only asks: Prometheus for a query, the apiserver for a
Kubernetes check on the new version's pods (`podchecks`). It must never judge a measurement itself, and a
provider that cannot answer is an error sample (inconclusive), never an exception that skips the measurement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from opsbus.common.errors import OpsbusError
from opsbus.common.events.payloads.deploy import (
    AnalysisMetric,
    AnalysisSpec,
    KubernetesProvider,
    Measurement,
    MetricsProvider,
)
from opsbus.deployer.domain import analysis, podchecks
from opsbus.deployer.executing.context import Context


async def _sample(
    ctx: Context, provider: MetricsProvider | KubernetesProvider, namespace: str, new_pods: Mapping[str, str] | None
) -> analysis.Sample:
    if isinstance(provider, MetricsProvider):
        return await ctx.metrics.query(provider)
    if new_pods is None:
        return podchecks.measure_pods(provider.check, None)
    try:
        pods = await ctx.kube.pods(namespace, dict(new_pods))
    except OpsbusError as exc:
        return analysis.Sample(error=f"listing the new pods failed: {exc}"[:1024])
    return podchecks.measure_pods(provider.check, pods)


async def measure(
    ctx: Context, metrics: Sequence[AnalysisMetric], *, namespace: str, new_pods: Mapping[str, str] | None
) -> list[Measurement]:
    """One measurement of each of `metrics`, in order."""
    samples = await asyncio.gather(*(_sample(ctx, m.provider, namespace, new_pods) for m in metrics))
    return [analysis.classify(metric, sample) for metric, sample in zip(metrics, samples, strict=True)]


async def measure_due(
    ctx: Context,
    spec: AnalysisSpec,
    taken: Mapping[str, Sequence[Measurement]],
    since: datetime,
    now: datetime,
    *,
    namespace: str,
    new_pods: Mapping[str, str] | None,
) -> tuple[dict[str, list[Measurement]], bool]:
    """The measurements after this tick, and whether any new one was taken.

    `new_pods` selects the new version's pods for Kubernetes checks; None while they cannot be told apart.
    """
    updated = {k: list(v) for k, v in taken.items()}
    due = analysis.due_metrics(spec, updated, since, now)
    if not due:
        return updated, False
    for metric, measurement in zip(due, await measure(ctx, due, namespace=namespace, new_pods=new_pods), strict=True):
        updated.setdefault(metric.name, []).append(measurement)
    return updated, True


def needs_pods(spec: AnalysisSpec | None) -> bool:
    """Whether `spec` has a Kubernetes check (and the executor must find the new pods for it)."""
    return spec is not None and any(isinstance(m.provider, KubernetesProvider) for m in spec.metrics)
