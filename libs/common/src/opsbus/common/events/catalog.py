"""The catalogue of event families: their verbs, producers, and the JetStream stream that keeps them.

This is the single source for stream provisioning (`opsbus.common.bus.streams`) and for the generated
AsyncAPI document, so the two cannot drift. Retention follows DESIGN.md section 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    stream: str
    retention: timedelta
    verbs: tuple[str, ...]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    description: str
    # Per-verb overrides of `producers`/`consumers` where they differ by verb (deploy.requested comes from the
    # gateway, CLI and healer; the rest from the deployer). Pairs, not a dict, so a Family stays hashable.
    verb_producers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    verb_consumers: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def subjects(self) -> str:
        """The stream's subject filter."""
        return f"{self.name}.>"

    def producers_of(self, verb: str) -> tuple[str, ...]:
        """Who publishes `<family>.<verb>`."""
        return dict(self.verb_producers).get(verb, self.producers)

    def consumers_of(self, verb: str) -> tuple[str, ...]:
        """Who consumes `<family>.<verb>`."""
        return dict(self.verb_consumers).get(verb, self.consumers)


def _each(verbs: tuple[str, ...], services: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((verb, services) for verb in verbs)


_DEPLOY_OUTCOMES = (
    "started",
    "progressed",
    "succeeded",
    "failed",
    "rolledback",
    "superseded",
    "aborted",
    "skipped",
    "rollback_failed",
)
_RECOVERY_STEPS = ("planned", "started", "succeeded", "failed", "escalated")


FAMILIES: tuple[Family, ...] = (
    Family(
        "cluster",
        "CLUSTER",
        1 * DAY,
        ("event",),
        ("watcher",),
        ("optimizer", "teams"),
        "Normalized changes of watched Kubernetes objects (pods, nodes, workloads, Kubernetes Events).",
    ),
    Family(
        "alert",
        "ALERT",
        30 * DAY,
        ("fired", "resolved"),
        ("watcher", "gateway"),
        ("healer", "notifier", "optimizer"),
        "Faults detected by the watcher or received from Alertmanager, with evidence.",
    ),
    Family(
        "deploy",
        "DEPLOY",
        30 * DAY,
        ("requested", *_DEPLOY_OUTCOMES),
        ("gateway", "cli", "healer", "deployer"),
        ("deployer", "notifier", "healer", "gateway"),
        "Rollout requests and their lifecycle, linked by correlationid.",
        verb_producers=(("requested", ("gateway", "cli", "healer")), *_each(_DEPLOY_OUTCOMES, ("deployer",))),
        verb_consumers=(
            ("requested", ("deployer", "gateway")),
            *_each(_DEPLOY_OUTCOMES, ("notifier", "healer", "gateway")),
        ),
    ),
    Family(
        "recovery",
        "RECOVERY",
        30 * DAY,
        ("planned", "approved", "rejected", "started", "succeeded", "failed", "escalated"),
        ("healer", "gateway"),
        ("notifier", "gateway", "healer"),
        "Remediation plans, approvals and their outcomes.",
        verb_producers=(*_each(("approved", "rejected"), ("gateway",)), *_each(_RECOVERY_STEPS, ("healer",))),
        verb_consumers=(
            *_each(("approved", "rejected"), ("healer", "notifier", "gateway")),
            *_each(_RECOVERY_STEPS, ("notifier", "gateway")),
        ),
    ),
    Family(
        "scale",
        "SCALE",
        30 * DAY,
        ("recommended", "applied"),
        ("optimizer",),
        ("notifier", "gateway"),
        "Right-sizing and scaling recommendations and the changes applied.",
    ),
    Family(
        "notify",
        "NOTIFY",
        7 * DAY,
        ("delivered", "failed"),
        ("notifier",),
        ("gateway",),
        "Outcome of each notification delivery.",
    ),
    Family(
        "change",
        "CHANGE",
        30 * DAY,
        ("recorded",),
        ("watcher", "deployer", "healer", "optimizer"),
        ("analyzer", "gateway"),
        "The change timeline: what changed on a workload, config object, autoscaler, node or policy (a summarised "
        "before/after diff; ConfigMaps and Secrets as content digests only), observed by the watcher or written by "
        "the deployer, healer or optimizer (with causation to the request or alert).",
    ),
    Family(
        "diagnosis",
        "DIAGNOSIS",
        30 * DAY,
        ("made", "revised"),
        ("analyzer",),
        ("gateway", "notifier", "healer"),
        "The probable causes of an incident, ranked, each with its evidence, confidence and a suggested healer "
        "action (or `unknown` with what was checked); revised as later evidence changes the ranking.",
    ),
    Family(
        "audit",
        "AUDIT",
        400 * DAY,
        ("recorded",),
        ("watcher", "healer", "deployer", "optimizer", "notifier", "gateway"),
        ("gateway", "teams"),
        "Who did what, why and when: every decision and mutating call, including deliberate no-ops.",
    ),
)

DLQ = Family(
    "dlq",
    "DLQ",
    14 * DAY,
    (),
    ("bus",),
    ("operators",),
    "Messages a consumer could not handle: the original bytes on dlq.<original subject>, reason in headers.",
)

ALL_STREAMS: tuple[Family, ...] = (*FAMILIES, DLQ)


def family(name: str) -> Family:
    for fam in ALL_STREAMS:
        if fam.name == name:
            return fam
    raise KeyError(f"unknown event family {name!r}; known: {', '.join(f.name for f in ALL_STREAMS)}")
