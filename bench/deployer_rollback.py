"""Time to roll back a bad release after analysis failure, against Flagger's and Argo Rollouts' default path.

Flagger rolls a canary back after `threshold` failed checks run every `interval` (defaults in its docs: interval
1m, threshold 5), so a release that is bad from the first second is rolled back no sooner than interval x
threshold; Argo Rollouts' AnalysisRun fails after `failureLimit` + 1 failed measurements `interval` apart. This
bench runs the deployer's path on the sandbox: a rolling update whose Prometheus metric is bad from the start,
with a measurement interval of `--interval` seconds, once with the deployer's default failure_limit 0 (fail at
the first failed measurement) and once with failure_limit = threshold - 1 (Flagger's count of failed checks).
It prints, per case, request -> `deploy.failed` (the decision) and request -> `deploy.rolledback` (the old
template is available again), and the ratio of the decision time to Flagger's formula at the same interval.

    uv run python -m bench.deployer_rollback [--rounds 3] [--interval 5] [--threshold 5] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from bench.deployer_harness import Harness, harness, sandbox_kubeconfig
from opsbus.common.events.payloads.deploy import AnalysisSpec, DeployFailed, DeployRolledBack, Strategy


async def bad_release(h: Harness, name: str, interval: int, failure_limit: int) -> tuple[float, float]:
    h.ns.create_deployment(name, 3, "registry.example/bench:1")
    await h.ns.wait_complete(name)
    analysis = AnalysisSpec.model_validate(
        {
            "metrics": [
                {
                    "name": "success-rate",
                    "provider": {"query": "sum(rate(ok[1m])) / sum(rate(all[1m]))"},
                    "success_condition": {"operator": ">=", "threshold": 0.99},
                    "interval_seconds": interval,
                    "count": failure_limit + 2,
                    "failure_limit": failure_limit,
                }
            ]
        }
    )
    request_id, began = await h.publish(
        name, strategy=Strategy.ROLLING, images={"app": "registry.example/bench:2-bad"}, analysis=analysis
    )
    failed = await h.outcomes.wait(request_id, DeployFailed)
    rolled = await h.outcomes.wait(request_id, DeployRolledBack)
    if h.ns.image(name) != "registry.example/bench:1":
        raise RuntimeError(f"{name}: deploy.rolledback but the image is {h.ns.image(name)}")
    return failed - began, rolled - began


async def main(rounds: int, interval: int, threshold: int, kubeconfig: str | None) -> None:
    cases = {"failure_limit 0 (deployer default)": 0, f"failure_limit {threshold - 1} (= threshold)": threshold - 1}
    results: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    async with harness(sandbox_kubeconfig(kubeconfig), tick_seconds=1.0) as h:
        h.prometheus.value = 0.5  # bad from the first second
        for n in range(rounds):
            for i, (case, limit) in enumerate(cases.items()):
                results[case].append(await bad_release(h, f"bad-{n}-{i}", interval, limit))
                decided, rolled = results[case][-1]
                print(f"round {n + 1}, {case}: failed after {decided:6.2f}s, rolled back after {rolled:6.2f}s")
    flagger = interval * threshold
    print()
    print(f"rounds: {rounds}, measurement interval {interval}s, threshold {threshold} (medians)")
    print(f"Flagger/Argo path: rollback starts after interval x threshold = {flagger}s (defaults 1m x 5 = 300s)")
    for case, limit in cases.items():
        decided = statistics.median(d for d, _ in results[case])
        rolled = statistics.median(r for _, r in results[case])
        formula = interval * limit  # the first measurement is taken at once, the (limit + 1)th fails it
        print(
            f"{case:38} failed {decided:6.2f}s ({decided / flagger:.2f}x of {flagger}s; own formula "
            f"{formula}s), rolled back {rolled:6.2f}s ({rolled / flagger:.2f}x)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=int, default=5, help="seconds between measurements (Flagger: 60)")
    parser.add_argument("--threshold", type=int, default=5, help="Flagger's failed checks before rollback")
    parser.add_argument("--kubeconfig", default=None, help="default: OPSBUS_TEST_KUBECONFIG, else sandbox.sh env")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.interval, args.threshold, args.kubeconfig))
