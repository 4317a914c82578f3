"""Deployer overhead: `deploy.requested` -> `deploy.succeeded` against the bare apply-and-wait path that
`kubectl set image` + `kubectl rollout status` take, measured in the same run on the same sandbox cluster.

Each round rolls two fresh Deployments of the same size from image :1 to :2: one by a strategic merge patch and
polling the Deployment every 0.1 s until the rollout is complete (what `kubectl rollout status` checks), the other
by publishing `deploy.requested` (rolling, no analysis) and waiting for `deploy.succeeded` on the bus. Same pod
count, same cluster, interleaved, so the ratio is what the deployer adds: the bus hop, the inbox and outbox
transactions, its tick, the revision bookkeeping. Only the ratio and the difference mean something on shared
machines.

    uv run python -m bench.deployer_overhead [--rounds 5] [--replicas 3] [--tick 1.0] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.deployer_harness import Harness, harness, sandbox_kubeconfig
from opsbus.common.events.payloads.deploy import DeploySucceeded, Strategy


async def bare(h: Harness, name: str, replicas: int) -> float:
    h.ns.create_deployment(name, replicas, "registry.example/bench:1")
    await h.ns.wait_complete(name)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/bench:2"}]}}}}
    began = time.monotonic()
    await asyncio.to_thread(h.ns.apps.patch_namespaced_deployment, name, h.ns.name, patch)
    await h.ns.wait_complete(name)
    return time.monotonic() - began


async def deployed(h: Harness, name: str, replicas: int) -> float:
    h.ns.create_deployment(name, replicas, "registry.example/bench:1")
    await h.ns.wait_complete(name)
    request_id, began = await h.publish(name, strategy=Strategy.ROLLING, images={"app": "registry.example/bench:2"})
    done = await h.outcomes.wait(request_id, DeploySucceeded)
    if h.ns.image(name) != "registry.example/bench:2":
        raise RuntimeError(f"{name}: deploy.succeeded but the image is {h.ns.image(name)}")
    return done - began


async def main(rounds: int, replicas: int, tick: float, kubeconfig: str | None) -> None:
    async with harness(sandbox_kubeconfig(kubeconfig), tick_seconds=tick) as h:
        bare_s: list[float] = []
        ours_s: list[float] = []
        for n in range(rounds):
            bare_s.append(await bare(h, f"bare-{n}", replicas))
            ours_s.append(await deployed(h, f"ours-{n}", replicas))
            print(f"round {n + 1}: bare apply+wait {bare_s[-1]:6.2f}s   deployer {ours_s[-1]:6.2f}s")
    b, o = statistics.median(bare_s), statistics.median(ours_s)
    per_round = statistics.median(x / y for x, y in zip(ours_s, bare_s, strict=True))
    print()
    print(f"rounds: {rounds}, replicas: {replicas}, deployer tick: {tick}s (medians)")
    print(f"bare patch + rollout-status wait   {b:6.2f}s   1.00x")
    print(f"deploy.requested -> succeeded      {o:6.2f}s   {o / b:.2f}x (per-round {per_round:.2f}x)")
    print(f"control overhead (difference)      {o - b:+6.2f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--tick", type=float, default=1.0, help="the deployer's tick_seconds (its default is 1.0)")
    parser.add_argument("--kubeconfig", default=None, help="default: OPSBUS_TEST_KUBECONFIG, else sandbox.sh env")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.replicas, args.tick, args.kubeconfig))
