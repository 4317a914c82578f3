"""The platform of docker-compose.yml as the image tier runs it: Debian's docker-compose (v1) against podman's API
socket, docker-compose.yml + deploy/docker/compose.local-binaries.yml (NATS, PostgreSQL, Jaeger and Prometheus from
the binaries `make setup` installs) + a per-test override, under a project name of its own and on free host ports.

Containers reach the host only through their network's gateway address, never its 127.0.0.1, where the sandbox's
apiserver and the test's webhook receiver listen: `Relay` forwards a port on that gateway address to them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.images.engine import REPO_ROOT, podman


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _serve(downstream: socket.socket, upstream: socket.socket) -> None:
    """Both directions of one connection, then both sockets closed."""
    back = threading.Thread(target=_pipe, args=(upstream, downstream), daemon=True)
    back.start()
    _pipe(downstream, upstream)
    back.join()
    downstream.close()
    upstream.close()


class Relay:
    """A TCP forwarder: `host:port` (chosen free) -> 127.0.0.1:`target_port`, one thread pair per connection."""

    def __init__(self, host: str, target_port: int) -> None:
        self._target = target_port
        self._server = socket.create_server((host, 0))
        self.host = host
        self.port: int = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                downstream, _ = self._server.accept()
                try:
                    upstream = socket.create_connection(("127.0.0.1", self._target), timeout=10)
                except OSError:
                    downstream.close()
                    continue
                upstream.settimeout(None)
                threading.Thread(target=_serve, args=(downstream, upstream), daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


DNS_RACE = "Temporary failure in name resolution"


def dns_race_victims(logs: str) -> list[str]:
    """The containers whose output shows podman's DNS race, from `docker-compose logs --no-color` (lines of
    `<container> | <output>`): the failures a second `up` may cure. Empty when the failure was anything else."""
    victims = set()
    for line in logs.splitlines():
        container, bar, output = line.partition("|")
        if bar and DNS_RACE in output:
            victims.add(container.strip())
    return sorted(victims)


@dataclass
class Compose:
    project: str
    files: list[Path]
    env: dict[str, str]
    log_dir: Path
    calls: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        binary = shutil.which("docker-compose")
        assert binary is not None
        command = [binary, "--project-name", self.project, "--project-directory", str(REPO_ROOT)]
        for file in self.files:
            command += ["--file", str(file)]
        self.calls.append(" ".join(args))
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, **self.env}, cwd=REPO_ROOT,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def up(self, *services: str, timeout: float = 900) -> None:
        """`up --detach`; once more when a container failed only to resolve a name on the project's network.

        podman 4.3's aardvark-dns can answer a lookup with a temporary failure while many containers join the
        network at once (seen here twice in three runs, a migration failing to resolve `postgres`); a second `up`
        starts the failed one-shot container again. Any other failure fails at once."""
        first = self.run("up", "--detach", "--no-build", *services, timeout=timeout, check=False)
        if first.returncode == 0:
            return
        if not dns_race_victims(self.run("logs", "--no-color", timeout=300, check=False).stdout):
            raise AssertionError(f"docker-compose up exited {first.returncode}:\n{first.stdout}\n{first.stderr}")
        self.run("up", "--detach", "--no-build", *services, timeout=timeout)

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.run("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=600, check=False)

    def gateway_address(self) -> str:
        """The address the project's containers reach the host at: its default network's gateway."""
        inspected = json.loads(podman("network", "inspect", f"{self.project}_default").stdout)
        return str(inspected[0]["subnets"][0]["gateway"])

    def logs(self, *services: str) -> str:
        return self.run("logs", "--no-color", "--tail", "60", *services, timeout=120, check=False).stdout

    def save_logs(self) -> Path:
        path = self.log_dir / f"{self.project}.log"
        path.write_text(self.run("logs", "--no-color", timeout=300, check=False).stdout)
        return path
