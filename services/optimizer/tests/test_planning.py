"""The planner's decisions and every guardrail: each guard is shown by a case that acts without it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.events.payloads.scale import ScaleMode
from opsbus.optimizer.domain.guardrails import Guardrails, RolloutState, clamp_step
from opsbus.optimizer.domain.planning import (
    Action,
    ContainerSpec,
    History,
    Plan,
    Policy,
    Snapshot,
    plan,
    recommendation_payload,
)
from opsbus.optimizer.domain.vertical import DAY, MI, ContainerUsage, VerticalPolicy

NOW = 10 * DAY
SETTLED = RolloutState(generation=3, observed_generation=3, replicas=4, updated_replicas=4, available_replicas=4)
WEB = WorkloadRef(kind="Deployment", namespace="shop", name="web")


def usage(cpu: float = 100.0, mem: float = 200 * MI, days: float = 7) -> dict[str, ContainerUsage]:
    p = VerticalPolicy()
    u = ContainerUsage.new(p)
    start = NOW - days * DAY
    for i in range(int(days * DAY / 600)):
        u.add_sample(start + i * 600, cpu, mem, p)
    return {"app": u}


def snapshot(**changes: object) -> Snapshot:
    base = Snapshot(
        workload=WEB,
        replicas=4,
        rollout=SETTLED,
        containers=(
            ContainerSpec("app", cpu_request=1000, cpu_limit=2000, memory_request=1024 * MI, memory_limit=1024 * MI),
        ),
        resource_version="42",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def auto(**guards: object) -> Policy:
    return Policy(mode=ScaleMode.AUTO, guardrails=replace(Guardrails(), **guards))  # type: ignore[arg-type]


def decide(policy: Policy, snap: Snapshot | None = None, history: History | None = None, **u: float) -> Plan:
    return plan(snap or snapshot(), usage(**u), policy, history or History(), NOW)


def test_over_provisioned_workload_gets_a_cheaper_recommendation_in_recommend_mode() -> None:
    p = decide(Policy(mode=ScaleMode.RECOMMEND))
    assert p.action is Action.RECOMMEND
    t = p.targets[0]
    assert t.cpu_request is not None and t.cpu_request < 200
    assert t.memory_request == 250 * MI  # the minimum: 200 Mi usage x margin is below it
    # limits come from usage: CPU keeps room for bursts over the request, memory covers the highest peak
    assert t.cpu_limit is not None and t.cpu_limit >= 2 * t.cpu_request
    assert t.memory_limit is not None and t.memory_limit > t.memory_request
    assert p.cost is not None and p.cost.monthly_delta < 0
    payload = recommendation_payload(p, snapshot(), "rec-1", Policy().prices)
    assert payload.containers[0].recommended.requests.cpu_millicores == t.cpu_request
    assert payload.cost.monthly_delta == p.cost.monthly_delta


def test_vpa_policy_keeps_the_limits_proportion_to_requests() -> None:
    p = decide(Policy(mode=ScaleMode.RECOMMEND, vertical=VerticalPolicy.vpa()))
    t = p.targets[0]
    assert t.cpu_request is not None and t.cpu_limit == 2 * t.cpu_request
    assert t.memory_limit == t.memory_request


def test_mode_off_decides_nothing() -> None:
    assert decide(Policy(mode=ScaleMode.OFF)).action is Action.OFF


def test_no_usage_is_a_noop() -> None:
    p = plan(snapshot(), {}, auto(), History(), NOW)
    assert p.action is Action.NOOP and p.reason == "no usage yet"


def test_small_changes_are_noops() -> None:
    right = snapshot(containers=(ContainerSpec("app", cpu_request=130, memory_request=260 * MI),))
    p = decide(auto(), right)
    assert p.action is Action.NOOP
    assert "within 10%" in p.reason


def test_auto_applies_within_the_max_step() -> None:
    p = decide(auto(max_step_down=0.3))
    assert p.action is Action.APPLY
    s = p.step[0]
    assert s.cpu_request == 700  # 1000m -> 700m, not the ~130m target
    assert s.memory_request == clamp_step(1024 * MI, 250 * MI, Guardrails()) == round(1024 * MI * 0.7)
    assert "step clamped" in p.reason
    assert p.step_cost is not None and p.cost is not None
    assert p.cost.monthly_after < p.step_cost.monthly_after < p.step_cost.monthly_now


def test_without_the_step_guard_the_whole_change_lands_at_once() -> None:
    p = decide(auto(max_step_down=1.0))
    assert p.step[0].cpu_request == p.targets[0].cpu_request
    assert "step clamped" not in p.reason


def test_active_rollout_blocks_and_says_why() -> None:
    rolling = replace(SETTLED, generation=4)
    p = decide(auto(), snapshot(rollout=rolling))
    assert (p.action, p.guard) == (Action.BLOCKED, "rollout")
    assert "observedGeneration 3 < generation 4" in p.reason
    half = replace(SETTLED, updated_replicas=2)
    assert decide(auto(), snapshot(rollout=half)).guard == "rollout"
    assert decide(auto(), snapshot(rollout=SETTLED)).action is Action.APPLY  # same workload, settled: acts


def test_cooldown_blocks_a_second_change() -> None:
    recent = History(last_applied_at=NOW - 600)
    p = decide(auto(cooldown_seconds=3600), history=recent)
    assert (p.action, p.guard) == (Action.BLOCKED, "cooldown")
    assert "3000s left" in p.reason
    assert decide(auto(cooldown_seconds=300), history=recent).action is Action.APPLY


def test_cooldown_counts_the_change_annotated_on_the_object_when_the_store_missed_it() -> None:
    # a restart between the patch and the store's commit: the store knows an older change, the object the new one
    stale = History(last_applied_at=NOW - 5 * 3600)
    p = decide(auto(cooldown_seconds=3600), snapshot(applied_at=NOW - 600), history=stale)
    assert (p.action, p.guard) == (Action.BLOCKED, "cooldown")
    assert decide(auto(cooldown_seconds=3600), snapshot(applied_at=NOW - 7200), history=stale).action is Action.APPLY


def test_low_confidence_only_recommends() -> None:
    p = plan(snapshot(), usage(days=0.5), auto(min_confidence=0.5), History(), NOW)
    assert (p.action, p.guard) == (Action.RECOMMEND, "confidence")
    assert plan(snapshot(), usage(days=0.5), auto(min_confidence=0.0), History(), NOW).action is Action.APPLY


def test_dry_run_decides_but_marks_the_plan() -> None:
    assert decide(auto(dry_run=True)).action is Action.DRY_RUN


# --- horizontal -------------------------------------------------------------------------------------------
def busy(replicas: int, used: float, **changes: object) -> Snapshot:
    """Requests match usage per pod (no vertical change); `used` millicores in total."""
    spec = ContainerSpec("app", cpu_request=130, memory_request=260 * MI)
    return snapshot(
        replicas=replicas,
        containers=(spec,),
        cpu_usage_millicores=used,
        rollout=replace(SETTLED, replicas=replicas, updated_replicas=replicas, available_replicas=replicas),
        **changes,
    )


def test_idle_replicas_are_shed_without_an_hpa() -> None:
    p = decide(auto(min_replicas=1), busy(10, used=130 * 10 * 0.2))  # 20% utilisation vs 70% target
    assert p.action is Action.APPLY
    assert p.replicas_target == 3 and p.replicas_step == 3


def test_an_hpa_managed_workload_gets_no_replica_change() -> None:
    p = decide(auto(min_replicas=1), busy(10, used=130 * 10 * 0.2, hpa="web"))
    assert p.replicas_target is None and p.replicas_step is None
    assert "left to HPA web" in p.reason


def test_min_replicas_holds_the_scale_down() -> None:
    p = decide(auto(min_replicas=5), busy(10, used=130 * 10 * 0.2))
    assert p.replicas_step == 5
    assert "held at 5" in p.reason


def test_pdb_min_available_holds_the_scale_down() -> None:
    p = decide(auto(min_replicas=1), busy(10, used=130 * 10 * 0.2, pdb_min_available=8))
    assert p.replicas_step == 8
    assert "PDB minAvailable 8" in p.reason


@pytest.mark.parametrize("floor", [10, 12])
def test_a_floor_at_or_above_current_leaves_nothing_to_apply(floor: int) -> None:
    p = decide(auto(min_replicas=1), busy(10, used=130 * 10 * 0.2, pdb_min_available=floor))
    assert (p.action, p.guard) == (Action.BLOCKED, "floor")


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [(1000, 100, 700), (1000, 5000, 2000), (1000, 900, 900), (None, 300, 300), (100, 100, 100)],
)
def test_clamp_step(current: int | None, target: int, expected: int) -> None:
    assert clamp_step(current, target, Guardrails(max_step_down=0.3, max_step_up=1.0)) == expected


def test_a_scale_up_goes_through_the_cooldown_alone() -> None:
    recent = History(last_applied_at=NOW - 600)
    over = busy(4, used=130 * 4 * 1.4)  # 140% utilisation vs 70% target
    p = decide(auto(cooldown_seconds=3600), over, history=recent)
    assert p.action is Action.APPLY and p.replicas_step == 8
    assert p.step == over.containers  # the vertical part waits for the cooldown
    assert "only the scale-up applied" in p.reason


def test_a_scale_down_waits_for_the_cooldown() -> None:
    p = decide(auto(cooldown_seconds=3600, min_replicas=1), busy(10, used=130 * 10 * 0.2), History(NOW - 600))
    assert (p.action, p.guard) == (Action.BLOCKED, "cooldown")


def test_a_recommendation_no_longer_applies_once_the_workload_changed() -> None:
    from opsbus.optimizer.applying import _changed_since  # noqa: PLC0415

    snap = snapshot()
    p = decide(Policy(mode=ScaleMode.RECOMMEND), snap)
    rec = recommendation_payload(p, snap, "rec-1", Policy().prices)
    assert _changed_since(rec, snap) == ""
    resized = replace(snap, containers=(replace(snap.containers[0], cpu_request=500),))
    assert _changed_since(rec, resized) == "container app has other resources"
    assert _changed_since(rec, replace(snap, containers=())) == "container app is gone"
