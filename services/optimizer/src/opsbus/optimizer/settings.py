"""The optimizer's settings: `OPSBUS_OPTIMIZER__*` on top of the shared `ServiceSettings`.

Prices, namespace modes and guardrails live here; `policy()` turns them into the plain domain objects the
pure planner takes, so the domain never imports settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from opsbus.common.events.payloads.scale import ScaleMode
from opsbus.common.settings import ServiceSettings
from opsbus.optimizer.domain.cost import Prices
from opsbus.optimizer.domain.forecast import ForecastPolicy
from opsbus.optimizer.domain.guardrails import Guardrails
from opsbus.optimizer.domain.horizontal import HorizontalPolicy
from opsbus.optimizer.domain.planning import Policy
from opsbus.optimizer.domain.predictive import PredictivePolicy
from opsbus.optimizer.domain.vertical import VerticalPolicy


class PriceOptions(BaseModel):
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    vcpu_hour: float = Field(default=0.0316, ge=0, description="Price of one vCPU requested for one hour.")
    gib_hour: float = Field(default=0.0042, ge=0, description="Price of one GiB of memory requested for one hour.")


class GuardrailOptions(BaseModel):
    max_step_down: float = Field(default=0.3, ge=0, le=1, description="Largest relative decrease per change.")
    max_step_up: float = Field(default=1.0, ge=0, description="Largest relative increase per change (1.0 = x2).")
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=100, ge=1)
    cooldown_seconds: float = Field(default=3600.0, ge=0, description="Between two applied changes of a workload.")
    min_confidence: float = Field(default=0.5, ge=0, le=1, description="Below it, recommend only.")
    min_change: float = Field(default=0.1, ge=0, description="Smaller relative changes are no-ops.")
    dry_run: bool = Field(default=False, description="Decide and record everything, change nothing.")


class HistoryOptions(BaseModel):
    """The optimizer's own usage history (`optimizer.usage_history`), read by the forecaster when no
    `prometheus_url` is set; filled every cycle either way."""

    step_seconds: float = Field(
        default=300.0, gt=0, description="Samples are averaged per workload and container into steps this long."
    )
    max_age_days: float = Field(default=35.0, gt=0, description="Steps older than this are pruned.")
    max_points: int = Field(
        default=10_080, ge=16, description="At most this many steps kept per series (35 days of 5 min)."
    )
    prune_interval_seconds: float = Field(default=3_600.0, gt=0)


class ForecastOptions(BaseModel):
    """Forecast-driven sizing and scaling (`domain.forecast`, `domain.predictive`)."""

    enabled: bool = Field(default=True, description="false: the percentile and reactive rules alone.")
    workloads_per_pass: int = Field(
        default=20, ge=1, description="At most this many workloads refitted per cycle: the CPU bound."
    )
    refresh_seconds: float = Field(default=6 * 3_600.0, gt=0, description="How long one fit is used.")
    history_seconds: float = Field(default=28 * 86_400.0, gt=0, description="History read per fit.")
    prometheus_max_points: int = Field(default=2_000, ge=16, description="Points per series of one Prometheus read.")
    bucket_seconds: float = Field(
        default=1_800.0, gt=0, description="The fit's resolution (coarser when history is long)."
    )
    max_points: int = Field(default=720, ge=16, description="Points one fit sees at most: its CPU bound.")
    periods_seconds: list[float] = Field(
        default_factory=lambda: [86_400.0, 604_800.0], description="Seasons looked for (daily, weekly)."
    )
    horizon_seconds: float = Field(default=86_400.0, gt=0, description="How far ahead a fit forecasts.")
    trend_window_seconds: float = Field(default=2 * 86_400.0, gt=0)
    residual_window_seconds: float = Field(default=3 * 86_400.0, gt=0)
    upper_quantile: float = Field(default=0.98, gt=0.5, lt=1, description="Of the prediction interval.")
    startup_seconds: float = Field(
        default=60.0, ge=0, description="Lead time of a predictive scale-up until a pod start -> ready is measured."
    )
    in_place_window_seconds: float = Field(
        default=2 * 3_600.0, gt=0, description="Requests resized in place cover this much of the forecast."
    )
    target_utilization: float = Field(default=0.8, gt=0, le=1, description="Replicas for the forecast at this share.")
    history_source: Literal["auto", "prometheus", "store"] = Field(
        default="auto", description="Where fits read history; auto: Prometheus when prometheus_url is set."
    )
    in_place_resize: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Resize pods in place (the pods/resize subresource); auto: when the apiserver serves it.",
    )

    def policy(self) -> ForecastPolicy:
        return ForecastPolicy(
            bucket_seconds=self.bucket_seconds,
            max_points=self.max_points,
            max_history_seconds=self.history_seconds,
            periods=tuple(self.periods_seconds),
            trend_window_seconds=self.trend_window_seconds,
            residual_window_seconds=self.residual_window_seconds,
            horizon_seconds=self.horizon_seconds,
            upper_quantile=self.upper_quantile,
            refresh_seconds=self.refresh_seconds,
        )

    def predictive(self, cycle_seconds: float) -> PredictivePolicy:
        return PredictivePolicy(
            in_place_window_seconds=self.in_place_window_seconds,
            target_utilization=self.target_utilization,
            cycle_seconds=cycle_seconds,
        )


class OptimizerOptions(BaseModel):
    kubeconfig: str | None = Field(default=None, description="Path; unset: in-cluster, then ~/.kube/config.")
    prometheus_url: str | None = Field(default=None, description="Prometheus HTTP API base URL.")
    metrics_server_fallback: bool = Field(default=True, description="Use metrics.k8s.io when Prometheus fails.")
    default_mode: ScaleMode = ScaleMode.RECOMMEND
    modes: dict[str, ScaleMode] = Field(default_factory=dict, description="Mode per namespace, e.g. {prod: auto}.")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces to optimise; empty: all.")
    excluded_namespaces: list[str] = Field(default_factory=lambda: ["kube-system", "kube-public", "kube-node-lease"])
    interval_seconds: float = Field(default=300.0, gt=0, description="How often usage is read and plans made.")
    usage_step_seconds: float = Field(default=60.0, gt=0, description="Resolution of usage samples.")
    bootstrap_history_seconds: float = Field(
        default=8 * 86_400.0, gt=0, description="Usage history read at the first start (Prometheus retention)."
    )
    half_life_hours: float = Field(default=24.0, gt=0)
    cpu_percentile: float = Field(
        default=0.6, gt=0, lt=1, description="CPU request: this percentile of usage (0.9 is the VPA's)."
    )
    cpu_safety_margin: float = Field(default=0.1, ge=0, description="Added to the CPU percentile.")
    memory_percentile: float = Field(default=0.95, gt=0, lt=1, description="Memory request: of hourly peaks.")
    safety_margin: float = Field(default=0.15, ge=0, description="Added to the memory percentile.")
    limits_from_usage: bool = Field(
        default=True,
        description="Set limits from usage (CPU p99 and at least 2x the request; memory the highest peak plus "
        "headroom); false: limits keep their ratio to requests, as the VPA does.",
    )
    cpu_limit_percentile: float = Field(default=0.99, gt=0, le=1)
    memory_limit_headroom: float = Field(default=0.6, ge=0, description="Memory limit over the highest peak seen.")
    target_utilization: float = Field(default=0.7, gt=0, le=1, description="Horizontal target, of requests.")
    tolerance: float = Field(default=0.1, ge=0)
    scale_down_stabilization_seconds: float = Field(default=300.0, ge=0)
    prices: PriceOptions = PriceOptions()
    guardrails: GuardrailOptions = GuardrailOptions()
    retention_days: int = Field(default=30, ge=1)
    history: HistoryOptions = HistoryOptions()
    forecast: ForecastOptions = ForecastOptions()

    def mode_for(self, namespace: str) -> ScaleMode:
        return self.modes.get(namespace, self.default_mode)

    def policy(self, namespace: str) -> Policy:
        g = self.guardrails
        return Policy(
            mode=self.mode_for(namespace),
            vertical=VerticalPolicy(
                cpu_percentile=self.cpu_percentile,
                cpu_safety_margin=self.cpu_safety_margin,
                memory_percentile=self.memory_percentile,
                safety_margin=self.safety_margin,
                half_life_seconds=self.half_life_hours * 3600.0,
                limits_from_usage=self.limits_from_usage,
                cpu_limit_percentile=self.cpu_limit_percentile,
                memory_limit_headroom=self.memory_limit_headroom,
            ),
            horizontal=HorizontalPolicy(
                target_utilization=self.target_utilization,
                tolerance=self.tolerance,
                scale_down_stabilization_seconds=self.scale_down_stabilization_seconds,
                min_replicas=g.min_replicas,
                max_replicas=g.max_replicas,
            ),
            guardrails=Guardrails(
                max_step_down=g.max_step_down,
                max_step_up=g.max_step_up,
                min_replicas=g.min_replicas,
                cooldown_seconds=g.cooldown_seconds,
                min_confidence=g.min_confidence,
                min_change=g.min_change,
                dry_run=g.dry_run,
            ),
            prices=Prices(
                vcpu_hour=self.prices.vcpu_hour, gib_hour=self.prices.gib_hour, currency=self.prices.currency
            ),
        )


class OptimizerSettings(ServiceSettings):
    optimizer: OptimizerOptions = OptimizerOptions()
