"""Kubernetes-based analysis checks: only the new pods count, and no new pod is no data (never a pass)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsbus.common.events.payloads.deploy import (
    AnalysisMetric,
    AnalysisOutcome,
    KubernetesCheck,
    KubernetesProvider,
    MetricsProvider,
)
from opsbus.deployer.domain.analysis import classify
from opsbus.deployer.domain.podchecks import measure_pods, new_pods_selector


def pod(restarts: int = 0, ready: bool = True, deleting: bool = False, init_restarts: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"}
    if deleting:
        meta["deletionTimestamp"] = "2025-03-14T09:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "app", "restartCount": restarts}],
            "initContainerStatuses": [{"name": "init", "restartCount": init_restarts}],
        },
    }


def test_restarts_sum_over_the_live_new_pods_init_containers_included() -> None:
    pods = [pod(restarts=2), pod(restarts=1, init_restarts=1), pod(restarts=9, deleting=True)]
    assert measure_pods(KubernetesCheck.RESTARTS, pods).value == 4.0


def test_not_ready_counts_pods_without_ready_true() -> None:
    no_conditions = {"metadata": {"name": "p"}, "status": {}}
    pods = [pod(), pod(ready=False), no_conditions, pod(ready=False, deleting=True)]
    assert measure_pods(KubernetesCheck.NOT_READY, pods).value == 2.0


def test_no_new_pods_is_no_data_and_unknown_pods_is_an_error_both_inconclusive() -> None:
    metric = AnalysisMetric.model_validate(
        {
            "name": "restarts",
            "provider": {"kind": "kubernetes", "check": "restarts"},
            "success_condition": {"operator": "<=", "threshold": 0},
        }
    )
    empty = classify(metric, measure_pods(KubernetesCheck.RESTARTS, [pod(deleting=True)]))
    assert empty.outcome is AnalysisOutcome.INCONCLUSIVE and empty.error is not None and "no data" in empty.error
    unknown = classify(metric, measure_pods(KubernetesCheck.RESTARTS, None))
    assert unknown.outcome is AnalysisOutcome.INCONCLUSIVE and "cannot be told apart" in (unknown.error or "")
    assert classify(metric, measure_pods(KubernetesCheck.RESTARTS, [pod(restarts=1)])).outcome is (
        AnalysisOutcome.FAILED
    )
    assert classify(metric, measure_pods(KubernetesCheck.RESTARTS, [pod()])).outcome is AnalysisOutcome.SUCCESSFUL


def deployment(revision: str | None = "3") -> dict[str, Any]:
    annotations = {"deployment.kubernetes.io/revision": revision} if revision else {}
    return {"metadata": {"annotations": annotations}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}


def replica_set(revision: str, pod_hash: str) -> dict[str, Any]:
    return {
        "metadata": {
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "labels": {"app": "web", "pod-template-hash": pod_hash},
        }
    }


def test_new_pods_are_the_current_replica_sets_only() -> None:
    sets = [replica_set("2", "old"), replica_set("3", "new")]
    assert new_pods_selector(deployment(), sets) == {"app": "web", "pod-template-hash": "new"}
    assert new_pods_selector(deployment("4"), sets) is None  # the controller has not made revision 4's set yet
    assert new_pods_selector(deployment(None), sets) is None


def test_provider_kind_defaults_to_prometheus_and_a_wrong_kubernetes_check_is_refused_clearly() -> None:
    base = {"name": "m", "success_condition": {"operator": "<=", "threshold": 0}}
    assert isinstance(AnalysisMetric.model_validate({**base, "provider": {"query": "up"}}).provider, MetricsProvider)
    k8s = AnalysisMetric.model_validate({**base, "provider": {"kind": "kubernetes", "check": "not_ready"}})
    assert k8s.provider == KubernetesProvider(kind="kubernetes", check=KubernetesCheck.NOT_READY)
    with pytest.raises(ValidationError, match="restarts"):
        AnalysisMetric.model_validate({**base, "provider": {"kind": "kubernetes", "check": "latency"}})
    with pytest.raises(ValidationError, match="kubernetes"):
        AnalysisMetric.model_validate({**base, "provider": {"kind": "datadog", "query": "x"}})
