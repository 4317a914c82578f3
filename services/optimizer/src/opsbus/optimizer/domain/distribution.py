"""A container's remembered usage as the console draws it: percentiles and the share of samples per bucket.

Why this module exists: a recommendation is only trusted when the operator sees the usage it rests on against
the current request and limit (KRR and Kubecost show exactly that). The decaying histograms are the
optimizer's memory; this turns them into plain numbers for `opsbus.svc.optimizer.usage`. Pure: no I/O, and it
never changes a histogram.
"""

from __future__ import annotations

from opsbus.common.api.optimizer import ContainerUsageView, ResourceUsage, UsageBucket
from opsbus.optimizer.domain.histogram import EPSILON, DecayingHistogram
from opsbus.optimizer.domain.vertical import ContainerUsage


def resource_usage(histogram: DecayingHistogram, unit: str) -> ResourceUsage:
    total = histogram.total_weight
    buckets = [
        UsageBucket(
            start=histogram.buckets.start(i),
            end=histogram.buckets.start(i + 1),
            share=min(1.0, weight / total),
        )
        for i, weight in sorted(histogram.weights.items())
        if total > EPSILON and weight / total > 1e-6
    ]
    return ResourceUsage(
        unit=unit,
        p50=histogram.percentile(0.5),
        p90=histogram.percentile(0.9),
        p95=histogram.percentile(0.95),
        p99=histogram.percentile(0.99),
        max=buckets[-1].end if buckets else 0.0,
        buckets=buckets,
    )


def container_view(container: str, usage: ContainerUsage) -> ContainerUsageView:
    return ContainerUsageView(
        container=container,
        samples=usage.samples,
        observed_seconds=usage.observed_seconds,
        cpu=resource_usage(usage.cpu, "millicores"),
        memory=resource_usage(usage.memory_peaks, "bytes"),
    )
