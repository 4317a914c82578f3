"""Settings of the watcher: `OPSBUS_WATCHER__*` (e.g. `OPSBUS_WATCHER__NAMESPACES='["payments"]'`,
`OPSBUS_WATCHER__THRESHOLDS__RESOLVE_AFTER_SECONDS=2`, `OPSBUS_WATCHER__RESOLUTION__FLAP_STABLE_SECONDS=120`).
Built in `main()` and passed down."""

from __future__ import annotations

from pydantic import BaseModel, Field

from opsbus.common.settings import ServiceSettings
from opsbus.watcher.domain.rules import Resolution, Thresholds
from opsbus.watcher.domain.saturation import SaturationRules


class PrometheusOptions(SaturationRules):
    """The metrics source of the saturation rules (`OPSBUS_WATCHER__PROMETHEUS__URL=http://prometheus:9090`).
    Without a URL the saturation rules are off."""

    url: str | None = Field(default=None, description="Base URL of the Prometheus HTTP API; unset: rules off.")
    interval_seconds: float = Field(default=30.0, gt=0, description="How often the saturation rules run.")
    step_seconds: float = Field(default=30.0, gt=0, description="Resolution of query_range (aligned to it).")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Bound on one query.")
    selector: str = Field(
        default="",
        description='Extra label matchers added to every query, e.g. `cluster="prod"` (comma separated).',
    )
    stale_after_seconds: float = Field(
        default=300.0,
        ge=0,
        description="While queries fail, keep the last saturation findings this long (no resolve on an outage).",
    )


class WatcherOptions(BaseModel):
    kubeconfig: str | None = Field(
        default=None, description="Path to a kubeconfig; unset: in-cluster config, then $KUBECONFIG / ~/.kube/config."
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch; empty watches the whole cluster. Nodes are always watched.",
    )
    thresholds: Thresholds = Thresholds()
    resolution: Resolution = Resolution()
    prometheus: PrometheusOptions = PrometheusOptions()
    evaluate_interval_seconds: float = Field(
        default=1.0, gt=0, description="Time-based rules (bounds, hysteresis) are re-evaluated this often."
    )
    watch_timeout_seconds: int = Field(default=290, ge=1, description="Server-side timeout of one watch request.")
    list_page_size: int = Field(default=500, ge=1, description="Objects per list page (limit/continue).")
    backoff_initial_seconds: float = Field(default=0.5, gt=0, description="First reconnect delay.")
    backoff_max_seconds: float = Field(default=30.0, gt=0, description="Longest reconnect delay.")
    request_timeout_seconds: float = Field(default=10.0, gt=0, description="Bound on one non-watch API request.")
    log_lines: int = Field(default=20, ge=0, le=200, description="Last log lines of a crashed container (0: none).")
    log_timeout_seconds: float = Field(default=2.0, gt=0, description="Bound on fetching those log lines.")
    publish_cluster_events: bool = Field(default=True, description="Publish `cluster.event` for object changes.")
    publish_initial_list: bool = Field(
        default=False, description="Also publish `cluster.event` ADDED for every object of the first list."
    )
    record_changes: bool = Field(
        default=True,
        description="Publish `change.recorded` (the change timeline) for workloads, ConfigMaps/Secrets (digests "
        "only), HPAs and nodes.",
    )
    watch_secrets: bool = Field(
        default=True,
        description="List and watch Secrets, for their content digests on the change timeline. Off: no Secret "
        "informer (the watcher then needs no list/watch on Secrets) and no Secret change is recorded.",
    )
    restore_from_stream: bool = Field(
        default=True, description="At start, rebuild firing alerts from the ALERT stream (no re-fire after restart)."
    )


class WatcherSettings(ServiceSettings):
    watcher: WatcherOptions = WatcherOptions()
