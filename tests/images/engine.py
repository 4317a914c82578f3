"""podman as the image tier drives it: the environment of deploy/docker/podman-env.sh (runtime and limits that work
rootful without systemd), the images `deploy/docker/build-images.sh` builds, and podman's Docker-compatible API
socket that docker-compose talks to.

Where no engine can run (no podman, not root), `engine_unavailable()` names why, and the tier is skipped with that
reason: never passed without running.
"""

from __future__ import annotations

import os
import shutil
import socket as sockets
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "deploy" / "docker"
SERVICES = ("gateway", "watcher", "healer", "optimizer", "deployer", "notifier", "analyzer")
BASE_IMAGE = "localhost/opsbus-debian:bookworm"
PROJECT_LABEL = "com.docker.compose.project"


def engine_unavailable() -> str | None:
    """Why podman cannot build or run images here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (make setup installs it: tools/install.d/70-images.sh)"
    if os.geteuid() != 0:
        return "the image tier runs podman rootful: run it as root"
    if shutil.which("docker-compose") is None:
        return "docker-compose is not installed (make setup installs it)"
    return None


def podman_env() -> dict[str, str]:
    """This process's environment plus what deploy/docker/podman-env.sh exports (CONTAINERS_CONF)."""
    out = subprocess.run(
        ["bash", "-c", f'source "{DOCKER_DIR / "podman-env.sh"}" && printf %s "$CONTAINERS_CONF"'],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return {**os.environ, "CONTAINERS_CONF": out.stdout}


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False, env=podman_env()
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Image:
    service: str  # or `deps` / `deps-optimizer` for a dependency image
    key: str  # the hash of the build's inputs
    size: int  # bytes, as podman reports it
    build_seconds: int  # 0 when it was already built

    @property
    def ref(self) -> str:
        return f"localhost/opsbus-{self.service}:{self.key}"


def build_images(services: Sequence[str] = SERVICES, extra_env: dict[str, str] | None = None) -> list[Image]:
    """Run `make images`'s script (cached: only images whose inputs changed are built): the dependency images the
    services need, then the services'."""
    result = subprocess.run(
        ["bash", str(DOCKER_DIR / "build-images.sh"), *services],
        capture_output=True, text=True, timeout=3600, check=False, env={**podman_env(), **(extra_env or {})},
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"build-images.sh exited {result.returncode}:\n{result.stderr[-6000:]}")
    images = []
    for line in result.stdout.splitlines():
        name, key, size, seconds = line.split()
        images.append(Image(name.removeprefix("opsbus-"), key, int(size), int(seconds)))
    return images


def project_leftovers(project: str) -> dict[str, list[str]]:
    """Containers, pods, volumes and networks podman still holds for a compose project (labelled by compose)."""
    label = f"label={PROJECT_LABEL}={project}"
    found = {
        "containers": podman("ps", "--all", "--filter", label, "--format", "{{.Names}}").stdout.split(),
        "volumes": podman("volume", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split(),
        "networks": podman("network", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split(),
    }
    # by name as well: a network or volume compose made without its label would still be left behind
    found["volumes"] += [v for v in podman("volume", "ls", "--format", "{{.Name}}").stdout.split() if project in v]
    found["networks"] += [n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if project in n]
    return {kind: sorted(set(names)) for kind, names in found.items() if names}


def _answers_ping(path: Path) -> bool:
    """True once the API on the unix socket `path` answers `GET /_ping` with 200 OK.

    A plain socket, closed on every path: httpx's unix transport left the socket of a refused connect open, and the
    ResourceWarning that raised while the service was starting failed the compose test in a clean-clone CI run.
    """
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as conn:
        conn.settimeout(2)
        try:
            conn.connect(str(path))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
        except OSError:
            return False
    status, _, body = reply.partition(b"\r\n")
    return status.split(b" ")[1:2] == [b"200"] and body.endswith(b"OK")


@contextmanager
def api_socket(directory: Path) -> Iterator[str]:
    """podman's Docker-compatible API on a private unix socket (`podman system service`); yields DOCKER_HOST."""
    socket = directory / "podman.sock"
    url = f"unix://{socket}"
    log = (directory / "podman-service.log").open("wb")
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url], stdout=log, stderr=subprocess.STDOUT, env=podman_env()
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers_ping(socket):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"podman system service did not answer on {socket}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


class HealthTicker:
    """Runs the healthchecks of some services of a compose project every `period` seconds until they are healthy.

    podman schedules healthchecks with systemd timers; without systemd (CI runners, sandboxes) nobody runs them, a
    container never becomes healthy and compose's `condition: service_healthy` waits forever. This does what the
    timer would, for the services others depend on (`podman healthcheck run`), and stops checking a container once
    it is healthy: every check starts a process in the container, which a loaded machine feels.
    """

    def __init__(self, project: str, services: Sequence[str], period: float = 2.0) -> None:
        self._project = project
        self._services = set(services)
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"health-{project}", daemon=True)

    def __enter__(self) -> HealthTicker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        template = '{{.ID}} {{index .Labels "com.docker.compose.service"}} {{.Status}}'
        while not self._stop.wait(self._period):
            listed = podman(
                "ps", "--filter", f"label={PROJECT_LABEL}={self._project}", "--format", template,
                check=False, timeout=60,
            )  # fmt: skip
            for line in listed.stdout.splitlines():
                ident, service, status = [*line.split(" ", 2), "", ""][:3]
                if service in self._services and "(healthy)" not in status:
                    podman("healthcheck", "run", ident, check=False, timeout=60)
