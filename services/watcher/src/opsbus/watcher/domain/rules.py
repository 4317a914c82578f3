"""Detector thresholds: one documented bound per rule, set from `OPSBUS_WATCHER__THRESHOLDS__*`. Pure data."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
        default=30.0, ge=0, description="Hysteresis: a firing alert resolves once its condition is absent this long."
    )
    evidence_events: int = Field(default=10, ge=0, le=20, description="Recent Kubernetes Events in the evidence.")
