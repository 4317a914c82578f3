"""A real Prometheus server for tests, fed by an exporter the test controls and by backfilled history.

- `Exporter`: a `prometheus_client` registry served over HTTP on 127.0.0.1 (free port), in-process. The test
  sets gauges and counters with labels on `exporter.registry`; Prometheus scrapes them every second.
- `backfill(storage_dir, text)`: `promtool tsdb create-blocks-from openmetrics` into a storage directory before
  the server starts: history ("eight days of usage") that no scrape could produce in a test's lifetime.
  promtool's rules, checked here: timestamps in seconds, families contiguous, samples of a series in time
  order, the text closed by `# EOF`; and nothing newer than the head block's range (the last 3 hours, which
  the running server owns) nor older than the retention, which the server would delete at once.
- `prometheus_server(...)`: Debian's `prometheus` (the binary from `make setup`; `OPSBUS_PROMETHEUS` overrides)
  on 127.0.0.1 on a free port with a private storage directory, 1 s scrape and evaluation intervals; waits for
  `/-/ready` and, when it scrapes targets, for their first successful scrape. Stopped (SIGTERM, then SIGKILL)
  and its directory removed when the context exits.
- `PrometheusServer.query(...)` / `wait_for(...)` / `until(...)`: an instant PromQL query, and waiting (bounded)
  until its result satisfies the test.

The pytest fixtures built on these (`prometheus_exporter`, `prometheus_server`, `start_prometheus`) live in
`opsbus.common.testing.fixtures`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from opsbus.common.testing.servers import free_port

HEAD_RANGE_SECONDS = 3 * 3600  # promtool: "not safe to backfill data from the last 3 hours (the current head block)"
DEFAULT_RETENTION_SECONDS = 30 * 86_400

Result = list[dict[str, Any]]


def prometheus_binary() -> Path:
    return _binary("OPSBUS_PROMETHEUS", "prometheus")


def promtool_binary() -> Path:
    return _binary("OPSBUS_PROMTOOL", "promtool")


def _binary(env: str, name: str) -> Path:
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit)
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(f"{name} not found: run `make setup` (Debian's prometheus package), or set {env}")


# --- the exporter the test controls ---------------------------------------------------------------------


@dataclass
class Exporter:
    """A fresh `CollectorRegistry` served at `http://127.0.0.1:<port>/metrics` while running."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    port: int = 0
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Exporter:
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- backfill -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One metric family for `openmetrics()`: `kind` gauge or counter; `samples` maps a label set to
    (timestamp seconds, value) pairs. A counter's samples are written as `<name>_total`."""

    name: str
    kind: str
    samples: Mapping[tuple[tuple[str, str], ...], Sequence[tuple[float, float]]]
    help: str = ""


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs)
    return "{" + inner + "}"


def openmetrics(families: Iterable[Family]) -> str:
    """OpenMetrics text for promtool: each family contiguous, each series in time order, closed by `# EOF`."""
    lines: list[str] = []
    for fam in families:
        if fam.kind not in ("gauge", "counter"):
            raise ValueError(f"{fam.name}: kind {fam.kind!r}, want gauge or counter")
        base = fam.name.removesuffix("_total") if fam.kind == "counter" else fam.name
        sample_name = base + "_total" if fam.kind == "counter" else base
        lines.append(f"# HELP {base} {fam.help or base}")
        lines.append(f"# TYPE {base} {fam.kind}")
        for labels, points in fam.samples.items():
            rendered = sample_name + _labels(labels)
            for at, value in sorted(points):
                if not math.isfinite(value):
                    raise ValueError(f"{sample_name}{_labels(labels)} at {at}: value {value} is not finite")
                lines.append(f"{rendered} {value!r} {at:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _check_window(text: str, now: float, retention_seconds: float) -> None:
    oldest, newest = math.inf, -math.inf
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        at = float(line.rsplit(" ", 1)[1])
        oldest, newest = min(oldest, at), max(newest, at)
    if newest == -math.inf:
        raise ValueError("backfill: no samples in the OpenMetrics text")
    if newest > now - HEAD_RANGE_SECONDS:
        raise ValueError(
            f"backfill: a sample at {newest:.0f} is within the last {HEAD_RANGE_SECONDS // 3600} h (now {now:.0f}), "
            "the head block's range the running server owns; feed recent samples through the exporter instead"
        )
    if oldest < now - retention_seconds:
        raise ValueError(
            f"backfill: a sample at {oldest:.0f} is older than the retention ({retention_seconds:.0f} s): "
            "the server would delete it at start"
        )


def backfill(
    storage_dir: Path,
    text: str,
    *,
    now: float | None = None,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    max_block_duration: str = "24h",
) -> None:
    """Write `text` (OpenMetrics, see `openmetrics()`) as TSDB blocks into `storage_dir` with promtool.

    Blocks of up to `max_block_duration` (promtool's hidden flag; its default of 2 h makes 96 blocks of eight
    days, about 12 times slower to write here)."""
    _check_window(text, time.time() if now is None else now, retention_seconds)
    storage_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".om", delete=False) as f:
        f.write(text)
        source = Path(f.name)
    try:
        done = subprocess.run(  # noqa: S603 - promtool from PATH or OPSBUS_PROMTOOL, fixed arguments
            [
                *(str(promtool_binary()), "tsdb", "create-blocks-from", "openmetrics", "-q"),
                *(f"--max-block-duration={max_block_duration}", str(source), str(storage_dir)),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        source.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"promtool create-blocks-from openmetrics failed ({done.returncode}): {done.stderr[-3000:]}")


# --- the server -----------------------------------------------------------------------------------------


class PrometheusError(RuntimeError):
    """Prometheus answered a query with an error."""


@dataclass
class PrometheusServer:
    port: int
    storage_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def query(self, promql: str, *, at: float | None = None) -> Result:
        """An instant query: the `data.result` list of a vector answer (or [[t, v]] wrapped for a scalar)."""
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - http://127.0.0.1
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{promql}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{promql}: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def _attempt(self, promql: str, predicate: Callable[[Result], bool]) -> tuple[bool, Result | str]:
        """One query: (whether the predicate holds, the answer or the error) for the waiting loops."""
        try:
            result = self.query(promql)
        except (PrometheusError, OSError) as exc:
            return False, str(exc)
        return predicate(result), result

    def _give_up(self, promql: str, timeout: float, last: Result | str) -> TimeoutError:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
        return TimeoutError(f"{promql!r} did not give what the test expects within {timeout}s; last: {last}")

    def wait_for(
        self, promql: str, predicate: Callable[[Result], bool] = bool, *, timeout: float = 30.0, interval: float = 0.2
    ) -> Result:
        """Query until `predicate(result)` holds (default: any series); TimeoutError with the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            ok, last = self._attempt(promql, predicate)
            if ok and isinstance(last, list):
                return last
            if time.monotonic() >= deadline or (self.proc is not None and self.proc.poll() is not None):
                raise self._give_up(promql, timeout, last)
            time.sleep(interval)

    async def until(
        self, promql: str, predicate: Callable[[Result], bool] = bool, *, timeout: float = 30.0, interval: float = 0.2
    ) -> Result:
        """`wait_for` for async tests: the event loop keeps running while it waits."""
        deadline = time.monotonic() + timeout
        while True:
            ok, last = await asyncio.to_thread(self._attempt, promql, predicate)
            if ok and isinstance(last, list):
                return last
            if time.monotonic() >= deadline or (self.proc is not None and self.proc.poll() is not None):
                raise self._give_up(promql, timeout, last)
            await asyncio.sleep(interval)

    def start(self, config_path: Path, retention: str) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - prometheus from PATH or OPSBUS_PROMETHEUS
            [
                str(prometheus_binary()),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.storage_dir}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            ready = f"{self.url}/-/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"prometheus /-/ready not ready within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def scrape_config(targets: Sequence[str], *, job: str = "exporter", interval: str = "1s") -> str:
    config: dict[str, Any] = {"global": {"scrape_interval": interval, "evaluation_interval": interval}}
    if targets:
        config["scrape_configs"] = [
            {"job_name": job, "scrape_interval": interval, "static_configs": [{"targets": list(targets)}]}
        ]
    return json.dumps(config, indent=2)  # JSON is YAML


@contextlib.contextmanager
def prometheus_server(
    targets: Sequence[str] = (),
    *,
    history: str | None = None,
    retention: str = "30d",
    job: str = "exporter",
    ready_timeout: float = 60.0,
) -> Iterator[PrometheusServer]:
    """A running Prometheus scraping `targets` ("host:port") every second as job `job`, its storage first
    backfilled with `history` (OpenMetrics text, see `openmetrics()`) when given."""
    tmp = Path(tempfile.mkdtemp(prefix="opsbus-prometheus-"))
    server = PrometheusServer(port=free_port(), storage_dir=tmp / "data", log_path=tmp / "prometheus.log")
    try:
        if history is not None:
            backfill(server.storage_dir, history, retention_seconds=_seconds(retention))
        config = tmp / "prometheus.yml"
        config.write_text(scrape_config(targets, job=job))
        server.start(config, retention)
        server.wait_ready(ready_timeout)
        if targets:
            want = len(targets)
            server.wait_for(
                f'up{{job="{job}"}} == 1', lambda r: len(r) >= want, timeout=ready_timeout
            )  # the first scrape of every target succeeded
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000}
    try:
        return float(duration[:-1]) * units[duration[-1]]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"retention {duration!r}: want a number and one of {''.join(units)} (e.g. 30d)") from exc
