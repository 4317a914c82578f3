"""Fault scenarios for bench/diagnosis.py, each with its known cause.

`TUNED` are the scenarios the analyzer's ranking (weights, signature strengths, half-life, thresholds) was
developed against. `HELD_OUT` were written afterwards, from the issue's list of what operators see, and the
ranking was not changed for them: their accuracy is the honest one. A scenario's `expected` is (cause kind,
target name), target None when any target (or none) is right; `expected` None means nothing in the scenario
explains the incident and the right answer is `unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsbus.common.events.payloads import ChangeKind


@dataclass(frozen=True)
class Change:
    ago: float  # seconds before the first alert
    kinds: tuple[ChangeKind, ...]
    obj: str  # "Deployment/web", "ConfigMap/web-settings", "Node/node-3"
    diff: tuple[tuple[str, str | None, str | None], ...] = ()


@dataclass(frozen=True)
class Pod:
    name: str
    alertname: str
    reason: str | None = None
    last: str | None = None
    event: str | None = None
    node: str = "node-1"


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: tuple[str, str | None] | None  # (cause kind, target name); None: nothing explains it -> unknown
    changes: tuple[Change, ...]
    pods: tuple[Pod, ...]
    logs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # failing pod -> its log
    config_refs: tuple[tuple[str, str], ...] = ()


def _img(name: str, a: str, b: str) -> tuple[tuple[str, str | None, str | None], ...]:
    return (("spec.template.spec.containers[app].image", f"shop/{name}:{a}", f"shop/{name}:{b}"),)


CRASH = {"alertname": "KubePodCrashLooping", "reason": "CrashLoopBackOff", "last": "Error"}
DISTRACT = Change(4, (ChangeKind.IMAGE,), "Deployment/cart", _img("cart", "3", "4"))
DISTRACT_CM = Change(
    2, (ChangeKind.CONFIG,), "ConfigMap/cart-settings", (("data[A]", "sha256:" + "a" * 16, "sha256:" + "b" * 16),)
)

TUNED: tuple[Scenario, ...] = (
    Scenario(
        "bad image rollout",
        ("rollout", "web"),
        (Change(40, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "1.41", "1.42-typo")), DISTRACT),
        (Pod("web-a", "KubePodImagePullFailing", "ImagePullBackOff", event="Failed"),),
    ),
    Scenario(
        "configmap edit crashes pods",
        ("config_change", "web-settings"),
        (
            Change(
                30,
                (ChangeKind.CONFIG,),
                "ConfigMap/web-settings",
                (("data[DB_URL]", "sha256:" + "1" * 16, "sha256:" + "2" * 16),),
            ),
            DISTRACT_CM,
            DISTRACT,
        ),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs={
            "web-a": ("fatal: DB_URL: invalid scheme 'postgress'",),
            "web-b": ("fatal: DB_URL: invalid scheme 'postgress'",),
        },
        config_refs=(("ConfigMap", "web-settings"),),
    ),
    Scenario(
        "memory limit cut -> OOMKilled",
        ("resource_change", "web"),
        (
            Change(
                90,
                (ChangeKind.RESOURCES,),
                "Deployment/web",
                (("spec.template.spec.containers[app].resources.limits.memory", "512Mi", "96Mi"),),
            ),
            Change(600, (ChangeKind.IMAGE,), "Deployment/cart", _img("cart", "2", "3")),
        ),
        (Pod("web-a", "KubeContainerOOMKilled", "CrashLoopBackOff", last="OOMKilled"),),
    ),
    Scenario(
        "node NotReady takes its pods down",
        ("node", "node-3"),
        (
            Change(50, (ChangeKind.NODE_CONDITION,), "Node/node-3", (("status.conditions[Ready]", "True", "Unknown"),)),
            DISTRACT,
        ),
        (
            Pod("web-a", "KubeDeploymentReplicasMismatch", node="node-3"),
            Pod("web-b", "KubeDeploymentReplicasMismatch", node="node-3"),
        ),
    ),
    Scenario(
        "dependency outage visible only in logs",
        ("shared_dependency", None),
        (DISTRACT_CM,),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs=dict.fromkeys(
            ("web-a", "web-b"), ("starting", "dial tcp 10.0.4.2:5432: connect: connection refused to postgres:5432")
        ),
    ),
    Scenario(
        "dependency rolled out, clients crash",
        ("shared_dependency", "postgres"),
        (Change(25, (ChangeKind.IMAGE,), "Deployment/postgres", _img("postgres", "15", "16")), DISTRACT),
        (Pod("web-a", **CRASH),),
        logs={"web-a": ("error: connection refused to postgres:5432 (attempt 5)",)},
    ),
    Scenario(
        "request raise -> Pending",
        ("resource_change", "web"),
        (
            Change(
                60,
                (ChangeKind.RESOURCES,),
                "Deployment/web",
                (("spec.template.spec.containers[app].resources.requests.cpu", "250m", "48"),),
            ),
            Change(200, (ChangeKind.REPLICAS,), "Deployment/cart", (("spec.replicas", "2", "3"),)),
        ),
        (Pod("web-a", "KubePodNotScheduled", event="FailedScheduling"),),
    ),
    Scenario(
        "env change crashes pods",
        ("rollout", "web"),
        (
            Change(
                120, (ChangeKind.ENV,), "Deployment/web", (("spec.template.spec.containers[app].env[MODE]", "a", "b"),)
            ),
            DISTRACT,
            DISTRACT_CM,
        ),
        (Pod("web-a", **CRASH),),
    ),
    Scenario(
        "probe path change fails readiness",
        ("rollout", "web"),
        (
            Change(
                45,
                (ChangeKind.TEMPLATE,),
                "Deployment/web",
                (("spec.template.spec.containers[app].readinessProbe.httpGet.path", "/healthz", "/ready"),),
            ),
            DISTRACT,
        ),
        (Pod("web-a", "KubeDeploymentReplicasMismatch", event="Unhealthy"),),
    ),
    Scenario(
        "rollout minutes before, noise right before",
        ("rollout", "web"),
        (
            Change(180, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "2.0", "2.1")),
            DISTRACT,
            DISTRACT_CM,
            Change(1, (ChangeKind.REPLICAS,), "Deployment/search", (("spec.replicas", "4", "6"),)),
        ),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs={"web-a": ("panic: nil map write in cart.Merge",), "web-b": ("panic: nil map write in cart.Merge",)},
    ),
    Scenario(
        "nothing explains it (only an unrelated change)",
        None,
        (DISTRACT,),
        (Pod("web-a", **CRASH),),
    ),
    Scenario(
        "nothing explains it (the workload's last rollout was 2 h ago)",
        None,
        (Change(7200, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "1.0", "1.1")),),
        (Pod("web-a", **CRASH),),
    ),
)


REDIS_DOWN = ("ready", "GET /api/cart 503 1002ms", "ERR redis: dial tcp redis:6379: i/o timeout")

HELD_OUT: tuple[Scenario, ...] = (
    Scenario(
        "secret rotated, pods crash",
        ("config_change", "web-tls"),
        (
            Change(
                35,
                (ChangeKind.CONFIG,),
                "Secret/web-tls",
                (("data[tls.key]", "sha256:" + "3" * 16, "sha256:" + "4" * 16),),
            ),
            DISTRACT,
        ),
        (Pod("web-a", **CRASH),),
        logs={"web-a": ("fatal: tls: private key does not match public key",)},
        config_refs=(("Secret", "web-tls"),),
    ),
    Scenario(
        "args change crashes pods",
        ("rollout", "web"),
        (
            Change(
                70,
                (ChangeKind.COMMAND,),
                "Deployment/web",
                (("spec.template.spec.containers[app].args", '["--port=8080"]', '["--prot=8080"]'),),
            ),
            DISTRACT_CM,
        ),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs=dict.fromkeys(("web-a", "web-b"), ("flag provided but not defined: -prot",)),
    ),
    Scenario(
        "new version leaks memory -> OOMKilled",
        ("rollout", "web"),
        (
            Change(240, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "3.1", "3.2")),
            Change(
                20,
                (ChangeKind.RESOURCES,),
                "Deployment/cart",
                (("spec.template.spec.containers[app].resources.limits.memory", "256Mi", "128Mi"),),
            ),
        ),
        (Pod("web-a", "KubeContainerOOMKilled", "CrashLoopBackOff", last="OOMKilled"),),
    ),
    Scenario(
        "image typo after an old env change",
        ("rollout", "web"),
        (
            Change(
                1500, (ChangeKind.ENV,), "Deployment/web", (("spec.template.spec.containers[app].env[A]", "1", "2"),)
            ),
            Change(20, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "5", "5-rc1-typo")),
            DISTRACT,
        ),
        (Pod("web-a", "KubePodImagePullFailing", "ErrImagePull", event="Failed"),),
    ),
    Scenario(
        "node memory pressure, its pods OOM",
        ("node", "node-2"),
        (
            Change(
                40,
                (ChangeKind.NODE_CONDITION,),
                "Node/node-2",
                (("status.conditions[MemoryPressure]", "False", "True"),),
            ),
            Change(
                40, (ChangeKind.NODE_CONDITION,), "Node/node-7", (("status.conditions[DiskPressure]", "False", "True"),)
            ),
            DISTRACT,
        ),
        (
            Pod("web-a", "KubeContainerOOMKilled", "CrashLoopBackOff", last="OOMKilled", node="node-2"),
            Pod("web-b", "KubeContainerOOMKilled", "CrashLoopBackOff", last="OOMKilled", node="node-2"),
        ),
    ),
    Scenario(
        "cache dependency outage in logs only",
        ("shared_dependency", None),
        (DISTRACT, DISTRACT_CM),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs=dict.fromkeys(("web-a", "web-b"), REDIS_DOWN),
    ),
    Scenario(
        "replicas raised -> Pending",
        ("scaling", "web"),
        (Change(30, (ChangeKind.REPLICAS,), "Deployment/web", (("spec.replicas", "3", "40"),)), DISTRACT),
        (Pod("web-x", "KubePodNotScheduled", event="FailedScheduling"),),
    ),
    Scenario(
        "probe port change after a harmless rollout elsewhere",
        ("rollout", "web"),
        (
            Change(
                55,
                (ChangeKind.TEMPLATE,),
                "Deployment/web",
                (("spec.template.spec.containers[app].livenessProbe.httpGet.port", "8080", "8081"),),
            ),
            Change(
                10,
                (ChangeKind.TEMPLATE,),
                "Deployment/cart",
                (("spec.template.spec.containers[app].ports", "8080", "9090"),),
            ),
        ),
        (Pod("web-a", "KubePodCrashLooping", "CrashLoopBackOff", last="Error", event="Unhealthy"),),
    ),
    Scenario(
        "nothing explains it (a ConfigMap the workload does not read)",
        None,
        (
            Change(
                15,
                (ChangeKind.CONFIG,),
                "ConfigMap/web-flags",
                (("data[X]", "sha256:" + "5" * 16, "sha256:" + "6" * 16),),
            ),
        ),
        (Pod("web-a", **CRASH),),
        config_refs=(("ConfigMap", "web-settings"),),
    ),
    Scenario(
        "nothing explains it (a node elsewhere went NotReady)",
        None,
        (Change(30, (ChangeKind.NODE_CONDITION,), "Node/node-9", (("status.conditions[Ready]", "True", "False"),)),),
        (Pod("web-a", **CRASH, node="node-1"),),
    ),
)

SETS = {"tuned": TUNED, "held-out": HELD_OUT}
