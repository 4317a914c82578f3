"""The deployer's effects: the rollout engine and one executor per strategy.

Why this package exists: it is the only place the deployer acts on the cluster, the store and the bus. Every
state change of a rollout and the event announcing it commit in one transaction (the outbox), so a crash never
leaves a rollout that changed state silently or an event about a change that did not happen; every request
gets exactly one terminal event. Modules:

- `engine`: intake (`deploy.requested`), the scheduler (one active rollout per workload, leases), the tick loop
- `rolling`: rolling, recreate and rollback requests (Deployments and StatefulSets, through `workloads`);
  `canarying`: replica-ratio canary; `bluegreening`: blue-green with the Service selector as the switch;
  `reverting`: the automatic rollback all of them share
- `measuring`: takes due analysis measurements; `recording`: the outbox writes; `commands`: abort/promote/
  history; `serializing`: the planners' state as stored JSON

Nothing here decides what the pure planners in `opsbus.deployer.domain` can decide.
"""

from opsbus.deployer.executing.engine import Engine
from opsbus.deployer.executing.recording import LostLeaseError
from opsbus.deployer.executing.serializing import view, workload_key

__all__ = ["Engine", "LostLeaseError", "view", "workload_key"]
