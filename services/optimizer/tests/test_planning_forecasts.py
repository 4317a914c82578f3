"""The planner with forecasts: predictive targets still pass every guardrail, and say which mode acted."""

from __future__ import annotations

from dataclasses import replace

from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.events.payloads.scale import ScaleMode
from opsbus.optimizer.domain.forecast import Forecast
from opsbus.optimizer.domain.guardrails import Guardrails, RolloutState
from opsbus.optimizer.domain.planning import Action, ContainerSpec, Forecasts, History, Plan, Policy, Snapshot, plan
from opsbus.optimizer.domain.vertical import DAY, MI, ContainerUsage, VerticalPolicy

NOW = 10 * DAY
HOUR = 3_600.0
WEB = WorkloadRef(kind="Deployment", namespace="shop", name="web")
SPEC = ContainerSpec("app", cpu_request=130, cpu_limit=400, memory_request=260 * MI, memory_limit=400 * MI)


def usage(cpu: float = 130.0, mem: float = 200 * MI) -> dict[str, ContainerUsage]:
    p = VerticalPolicy()
    u = ContainerUsage.new(p)
    for i in range(int(7 * DAY / 600)):
        u.add_sample(NOW - 7 * DAY + i * 600, cpu, mem, p)
    return {"app": u}


def hourly(values: list[float], *, reliable: bool = True) -> Forecast:
    """A forecast from NOW in hourly buckets, its upper bound 10% above the mean."""
    return Forecast(
        start=NOW,
        step=HOUR,
        mean=tuple(values),
        lower=tuple(values),
        upper=tuple(round(v * 1.1, 3) for v in values),
        periods=(DAY,),
        strength=0.9,
        slope_per_hour=0.0,
        reliable=reliable,
        reason="daily acf 0.90" if reliable else "no season found (daily acf 0.02)",
    )


def snapshot(replicas: int, used: float, forecasts: Forecasts, **changes: object) -> Snapshot:
    rollout = RolloutState(3, 3, replicas, replicas, replicas)
    base = Snapshot(WEB, replicas, rollout, (SPEC,), cpu_usage_millicores=used, forecasts=forecasts)
    return replace(base, **changes)  # type: ignore[arg-type]


AUTO = Policy(mode=ScaleMode.AUTO, guardrails=Guardrails(min_replicas=1))
# total demand: 260 m now (4 pods at 50% of 130 m), rising to 1300 m in the second hour
RISE = Forecasts(demand=hourly([260.0, 1300.0, 1300.0]), startup_seconds=3_000.0)


def decide(snap: Snapshot, policy: Policy = AUTO, history: History | None = None) -> Plan:
    return plan(snap, usage(), policy, history or History(), NOW)


def test_replicas_rise_one_start_up_time_before_the_forecast_rise() -> None:
    p = decide(snapshot(4, 260.0, RISE))
    assert p.action is Action.APPLY
    # the upper bound within the lead (3000 s + 60 s) reaches into the rise; 85%... of 130 m per replica
    assert p.replicas_step is not None and p.replicas_step > 4
    assert "predictive: forecast daily" in p.reason
    # without the forecast the reactive rule sees 50% utilisation and sheds pods instead
    reactive = decide(snapshot(4, 260.0, Forecasts()))
    assert reactive.replicas_target is not None and reactive.replicas_target < 4
    assert "reactive: " in reactive.reason and "no forecast yet" in reactive.reason


def test_the_guardrails_still_hold_a_predictive_decision() -> None:
    # an HPA owns the replicas: no replica change, whatever the forecast
    hpa = decide(snapshot(4, 260.0, RISE, hpa="web"))
    assert hpa.replicas_target is None and "left to HPA web" in hpa.reason
    # a rollout under way blocks
    rolling = decide(snapshot(4, 260.0, RISE, rollout=RolloutState(4, 3, 4, 2, 4)))
    assert (rolling.action, rolling.guard) == (Action.BLOCKED, "rollout")
    # a predictive scale-down waits for the cooldown; dry run decides and changes nothing
    fall = Forecasts(demand=hourly([100.0, 100.0]), startup_seconds=60.0)
    held = decide(snapshot(8, 100.0, fall), history=History(last_applied_at=NOW - 600))
    assert (held.action, held.guard) == (Action.BLOCKED, "cooldown")
    dry = decide(snapshot(8, 100.0, fall), Policy(mode=ScaleMode.AUTO, guardrails=Guardrails(dry_run=True)))
    assert dry.action is Action.DRY_RUN and dry.replicas_step == 2  # ceil(110 m / (130 m x 80%))


def test_cpu_request_follows_the_forecast_in_place_and_memory_keeps_its_floor() -> None:
    per_pod = Forecasts(cpu={"app": hourly([40.0, 40.0, 40.0, 120.0])}, in_place_resize=True, upper_quantile=0.98)
    p = plan(snapshot(4, 4 * 60.0, per_pod, cpu_usage_millicores=None), usage(), AUTO, History(), NOW)
    t = p.targets[0]
    assert t.cpu_request == 47  # ceil(44 x 1.05): the next 2 h, not the 120 m hour after
    assert t.memory_request is not None and t.memory_request >= 200 * MI  # the peak floor, not the forecast
    assert "cpu predictive: forecast daily" in p.basis["app"]
    assert "min/month above request" in p.basis["app"]
    # the step clamp still bounds the change: 130 m -> at most -30%
    assert p.action is Action.APPLY and p.step[0].cpu_request == 91
    # no resize subresource: the request covers the forecast's peak
    peak = plan(
        snapshot(4, 240.0, replace(per_pod, in_place_resize=False), cpu_usage_millicores=None),
        usage(),
        AUTO,
        History(),
        NOW,
    )
    assert peak.targets[0].cpu_request == 139  # ceil(132 x 1.05)


def test_an_unreliable_cpu_forecast_leaves_the_percentile_target() -> None:
    shaky = Forecasts(cpu={"app": hourly([40.0] * 4, reliable=False)}, in_place_resize=True)
    with_forecast = plan(snapshot(4, 240.0, shaky, cpu_usage_millicores=None), usage(), AUTO, History(), NOW)
    without = plan(snapshot(4, 240.0, Forecasts(), cpu_usage_millicores=None), usage(), AUTO, History(), NOW)
    assert with_forecast.targets[0].cpu_request == without.targets[0].cpu_request
    assert "cpu reactive: percentile sizing (forecast no season found" in with_forecast.basis["app"]
