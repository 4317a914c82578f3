"""The analyzer's settings: `OPSBUS_ANALYZER__*` on top of the shared `ServiceSettings`. Built in `main()`;
`tuning()` turns them into the plain object the pure planner takes."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from opsbus.analyzer.domain.planning import Tuning
from opsbus.common.settings import ServiceSettings

_POD = 'namespace="$namespace",pod=~"$workload-.*",container!=""'
DEFAULT_QUERIES = {
    "error_rate": 'sum(rate(http_requests_total{namespace="$namespace",workload="$workload",code=~"5.."}[1m]))'
    ' / sum(rate(http_requests_total{namespace="$namespace",workload="$workload"}[1m]))',
    "memory_saturation": f"max(container_memory_working_set_bytes{{{_POD}}}"
    f" / container_spec_memory_limit_bytes{{{_POD}}})",
    "cpu_throttling": f"sum(rate(container_cpu_cfs_throttled_periods_total{{{_POD}}}[5m]))"
    f" / sum(rate(container_cpu_cfs_periods_total{{{_POD}}}[5m]))",
}


class AnalyzerOptions(BaseModel):
    kubeconfig: str | None = Field(default=None, description="Path; unset: in-cluster, then ~/.kube/config.")
    read_cluster: bool = Field(
        default=True,
        description="Read container logs and the workload's config references through the Kubernetes API. "
        "Off (or no cluster reachable): diagnose from events and the alert's own evidence only.",
    )
    log_lines: int = Field(default=200, ge=1, le=2000, description="Lines read per container (tail).")
    baseline_pods: int = Field(default=2, ge=0, le=10, description="Healthy pods read as the log baseline.")
    cluster_timeout_seconds: float = Field(
        default=0.8, gt=0, description="Bound on each Kubernetes read, so a diagnosis stays within 2 s."
    )
    lookback_seconds: float = Field(default=3600.0, gt=0, description="Changes this long before the first alert.")
    half_life_seconds: float = Field(default=300.0, gt=0, description="Proximity halves every this long.")
    min_confidence: float = Field(default=0.35, ge=0, le=1, description="Weaker candidates are not reported.")
    incident_window_seconds: float = Field(
        default=900.0, gt=0, description="An alert of the same workload or node within this joins the incident."
    )
    freshness_seconds: float = Field(default=900.0, gt=0, description="Older alerts are skipped, not diagnosed.")
    alert_concurrency: int = Field(default=8, ge=1, description="Alerts diagnosed at once per replica.")
    change_batch: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Changes and deploy events taken in at once per replica: those that arrive while a batch is "
        "written go into the next one, one transaction each (their timeline rows, one open-incident read, "
        "each affected incident diagnosed once).",
    )
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus base URL for metric evidence (e.g. http://prometheus:9090); unset: none is used.",
    )
    metric_queries: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_QUERIES),
        description="Name -> PromQL template ($namespace, $workload) of the series read for an incident's workload.",
    )
    metric_lookback_seconds: float = Field(default=900.0, gt=0, description="Series read this far before the alert.")
    timeline_retention_hours: float = Field(default=24.0, gt=0, description="How long changes are kept.")
    retention_days: int = Field(default=30, ge=1, description="Incidents, inbox and published outbox rows.")

    def tuning(self) -> Tuning:
        return Tuning(
            lookback=timedelta(seconds=self.lookback_seconds),
            half_life_seconds=self.half_life_seconds,
            min_confidence=self.min_confidence,
        )


class AnalyzerSettings(ServiceSettings):
    analyzer: AnalyzerOptions = AnalyzerOptions()
