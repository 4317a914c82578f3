"""Detector thresholds: one documented bound per rule, set from `OPSBUS_WATCHER__THRESHOLDS__*`; how alerts
resolve and how flapping is damped, per rule, from `OPSBUS_WATCHER__RESOLUTION__*`. Pure data."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from opsbus.watcher.domain.lifecycle import Policy


class Thresholds(BaseModel):
    """Bounds of the detectors. Defaults fire in seconds where the cluster already says "broken", and
    wait where a state is normal for a while (a pending pod, a rollout in progress)."""

    crashloop_min_restarts: int = Field(
        default=1,
        ge=0,
        description="KubePodCrashLooping: container waiting in CrashLoopBackOff with at least this many restarts.",
    )
    pending_unschedulable_seconds: float = Field(
        default=60.0, ge=0, description="KubePodNotScheduled: PodScheduled=False/Unschedulable for longer than this."
    )
    image_pull_seconds: float = Field(
        default=0.0, ge=0, description="KubePodImagePullFailing: waiting in ErrImagePull/ImagePullBackOff this long."
    )
    deployment_unavailable_seconds: float = Field(
        default=300.0,
        ge=0,
        description="KubeDeploymentReplicasMismatch: unavailable replicas > 0 (and Available=False or progress "
        "stalled) for longer than this.",
    )
    replicas_mismatch_seconds: float = Field(
        default=300.0,
        ge=0,
        description="KubeStatefulSetReplicasMismatch / KubeDaemonSetReplicasMismatch: fewer pods ready than desired, "
        "dated from the earliest unready pod of the workload, for longer than this.",
    )
    oom_recent_seconds: float = Field(
        default=300.0,
        gt=0,
        description="KubeContainerOOMKilled: also fires while the last OOM kill is this recent "
        "(even if the container runs again).",
    )
    node_not_ready_seconds: float = Field(
        default=0.0, ge=0, description="KubeNodeNotReady / KubeNodeUnreachable: Ready not True for longer than this."
    )
    restart_spike_count: int = Field(
        default=5, ge=1, description="KubePodRestartRateHigh: at least this many restarts of one container ..."
    )
    restart_spike_window_seconds: float = Field(default=600.0, gt=0, description="... within this window.")
    resolve_after_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Confirmation bound: a firing alert resolves once its condition stayed absent this long (so one "
        "healthy sample does not resolve it); per rule: `resolution.rules.<alertname>.resolve_after_seconds`.",
    )
    evidence_events: int = Field(default=10, ge=0, le=20, description="Recent Kubernetes Events in the evidence.")


class ResolutionRule(BaseModel):
    """Overrides for one rule (alertname); a field left unset takes the default of `Resolution`."""

    resolve_after_seconds: float | None = Field(default=None, ge=0, description="Confirmation bound of this rule.")
    flap_window_seconds: float | None = Field(default=None, gt=0, description="Flap window of this rule.")
    flap_threshold: int | None = Field(default=None, ge=0, description="Re-fires that make it flapping; 0: never.")
    flap_stable_seconds: float | None = Field(default=None, ge=0, description="Stable period of this rule.")


class Resolution(BaseModel):
    """Flap damping, with per-rule overrides (e.g. `OPSBUS_WATCHER__RESOLUTION__RULES=
    '{"KubeNodeNotReady": {"flap_stable_seconds": 600}}'`). An alert that fires again `flap_threshold` times within
    `flap_window_seconds` of its earlier fires is flapping: that fire is labelled `flapping="true"`, later flaps
    publish nothing, and it resolves only after its condition stayed absent for `flap_stable_seconds`."""

    flap_window_seconds: float = Field(
        default=600.0, gt=0, description="Fires of one alert within this span of each other count as re-fires."
    )
    flap_threshold: int = Field(
        default=1,
        ge=0,
        description="Re-fires within the window that make an alert flapping (1: the first re-fire); 0: never.",
    )
    flap_stable_seconds: float = Field(
        default=120.0, ge=0, description="A flapping alert resolves once its condition stayed absent this long."
    )
    rules: dict[str, ResolutionRule] = Field(default_factory=dict, description="Overrides by alertname.")

    def policies(self, resolve_after_seconds: float) -> PolicyTable:
        """The policy of every rule, with `resolve_after_seconds` (the thresholds') as default confirmation."""
        return PolicyTable(self, resolve_after_seconds)


class PolicyTable:
    """alertname -> `Policy`, computed once per alertname."""

    def __init__(self, resolution: Resolution, resolve_after_seconds: float) -> None:
        self._resolution = resolution
        self._confirm = resolve_after_seconds
        self._cache: dict[str, Policy] = {}

    def __call__(self, alertname: str) -> Policy:
        policy = self._cache.get(alertname)
        if policy is None:
            r = self._resolution
            rule = r.rules.get(alertname) or ResolutionRule()

            def pick(value: float | None, default: float) -> float:
                return default if value is None else value

            policy = Policy(
                confirm=timedelta(seconds=pick(rule.resolve_after_seconds, self._confirm)),
                window=timedelta(seconds=pick(rule.flap_window_seconds, r.flap_window_seconds)),
                threshold=int(pick(rule.flap_threshold, r.flap_threshold)),
                stable=timedelta(seconds=pick(rule.flap_stable_seconds, r.flap_stable_seconds)),
            )
            self._cache[alertname] = policy
        return policy
