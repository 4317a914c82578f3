"""Is each part of the local stack up and ready? Checks of what `python -m opsbus.demo state` says it started.

A part is `ready` when it does its job (a service's `/readyz` answers 200, NATS and PostgreSQL accept
connections, Jaeger's query API answers), `up` when its process answers but is not ready yet (a service still
connecting to NATS), `down` when nothing answers where the demo said it listens, `starting` while the demo
starts (it says where its parts listen once all are up), and `not running` when no demo runs. A part the running
demo was started without (Jaeger in a benchmark) is `not used` and does not count against readiness. The
sandbox cluster is checked on its own: it can run without a demo.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

COMPONENTS = (
    "sandbox",
    "nats",
    "postgres",
    "jaeger",
    "watcher",
    "healer",
    "deployer",
    "optimizer",
    "notifier",
    "gateway",
)
READY, UP, DOWN, STARTING = "ready", "up", "down", "starting"
NOT_RUNNING, NOT_USED = "not running", "not used"


@dataclass(frozen=True)
class Status:
    name: str
    state: str  # ready | up | down | starting | not running | not used
    address: str = ""
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state == READY

    @property
    def needed(self) -> bool:
        return self.state != NOT_USED

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ready": self.ready}


def tcp(address: str, timeout: float = 1.0) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return READY, "accepts connections"
    except (OSError, ValueError) as exc:
        return DOWN, f"no connection: {exc}"


def http(url: str, timeout: float = 2.0) -> tuple[str, str]:
    try:
        answer = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return DOWN, f"no answer from {url}: {type(exc).__name__}"
    if answer.status_code == 200:
        return READY, f"{url}: 200"
    return UP, f"{url}: {answer.status_code} {answer.text[:200].strip()}"


Probe = Callable[[str], tuple[str, str]]


def check(
    stack: Mapping[str, Any] | None,
    phase: str,
    sandbox: Status,
    *,
    probe_tcp: Probe = tcp,
    probe_http: Probe = http,
) -> list[Status]:
    """One status per component, in start order; the parts the demo reports are probed where it says they are."""
    found: dict[str, Status] = {"sandbox": sandbox}
    if stack is not None:
        for part in stack.get("components", []):
            probe = part.get("probe", "")
            state, detail = probe_tcp(part["address"]) if probe == "tcp" else probe_http(probe)
            found[part["name"]] = Status(part["name"], state, part.get("address", ""), detail)
    if stack is not None:
        absent = Status("", NOT_USED, "", "this demo runs without it")
    elif phase == "starting":
        absent = Status("", STARTING, "", "the stack is starting (see the terminal of `opsbus dev up`)")
    else:
        absent = Status("", NOT_RUNNING, "", "no stack runs (start it: opsbus dev up)")
    return [found.get(name) or Status(name, absent.state, "", absent.detail) for name in COMPONENTS]


def all_ready(statuses: Sequence[Status]) -> bool:
    return all(s.ready for s in statuses if s.needed)


def summary(statuses: Sequence[Status]) -> str:
    waiting = [s.name for s in statuses if s.needed and not s.ready]
    return "everything is ready" if not waiting else f"not ready: {', '.join(waiting)}"
