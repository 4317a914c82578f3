"""Jaeger v2 as a local process: in-memory storage, OTLP/HTTP in, the query API out, on ports of our choosing.

The binary is the one `tools/install.d/10-jaeger.sh` builds from the Go module proxy (cached by version); set
`OPSBUS_JAEGER` to use another. Only what opsbus needs is configured: no Jaeger/Zipkin receivers, no sampling
extension, no self-metrics port, so two instances (a demo and a test run) never collide on fixed ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from opsbus.common.testing.servers import free_port
from opsbus.demo.versions import cache_dir, pinned

_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health_port}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class _PortTaken(RuntimeError):
    """Jaeger exited because one of its ports was bound by another process meanwhile."""


def jaeger_binary() -> Path:
    explicit = os.environ.get("OPSBUS_JAEGER")
    if explicit:
        return Path(explicit)
    version = pinned("JAEGER_VERSION")
    cached = cache_dir() / "jaeger" / version / "jaeger"
    if cached.exists():
        return cached
    found = shutil.which("jaeger")
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"Jaeger {version} is not built: run `make setup` (builds it once into {cached}), or set OPSBUS_JAEGER"
    )


@dataclass
class Jaeger:
    """One Jaeger process; `otlp_endpoint` is what the services export to, `query_url` what tests and people read."""

    workdir: Path
    otlp_port: int
    query_port: int
    query_grpc_port: int
    health_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}/v1/traces"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "jaeger.log"

    def start(self, timeout: float = 60.0, attempts: int = 3) -> None:
        """Start and wait for the query API. Its four ports were free when chosen, but another process (any
        outgoing connection takes an ephemeral port) can bind one before Jaeger does: then it exits with "address
        already in use", and it is started again on fresh ports (nothing has been given its addresses yet)."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                return
            except _PortTaken:
                if attempt == attempts:
                    raise
                self.otlp_port, self.query_port = free_port(), free_port()
                self.query_grpc_port, self.health_port = free_port(), free_port()

    def _start_once(self, timeout: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "jaeger.yaml"
        config.write_text(
            _CONFIG.format(
                query_port=self.query_port,
                query_grpc_port=self.query_grpc_port,
                health_port=self.health_port,
                otlp_port=self.otlp_port,
            )
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own pinned binary and config
                [str(jaeger_binary()), "--config", str(config)],
                env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},  # Jaeger would trace itself to :4317
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                if "address already in use" in tail:
                    self.proc = None
                    raise _PortTaken(tail)
                raise RuntimeError(f"jaeger exited with {self.proc.returncode}:\n{tail}")
            try:
                if httpx.get(f"{self.query_url}/api/services", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"jaeger's query API did not answer within {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace with this id as Jaeger's query API returns it (`spans`, `processes`), or None if unknown."""
        answer = httpx.get(f"{self.query_url}/api/traces/{trace_id}", timeout=5.0)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        data: list[dict[str, Any]] = answer.json().get("data") or []
        return data[0] if data else None


def services_in(trace: dict[str, Any]) -> set[str]:
    """The service names of the spans of a trace from Jaeger's query API."""
    processes: dict[str, Any] = trace.get("processes") or {}
    return {str(proc.get("serviceName")) for proc in processes.values()}
