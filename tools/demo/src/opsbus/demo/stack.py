"""The whole platform on one machine, each part a separate process: the supervisor behind `make demo` and the e2e tests.

Order of start: nats-server (JetStream), PostgreSQL, Jaeger, every service's migrations, then the seven services
(`python -m opsbus.<service> run`, configured only through `OPSBUS_*` environment variables), each waited for on its
`/readyz`. Stop is the reverse, each service given SIGTERM and its shutdown grace before SIGKILL. Every part runs in
its own session, so a Ctrl-C reaches the supervisor only and the shutdown stays ordered.

The chaos hooks (`kill_service`, `start_service`, `restart_nats`, `restart_postgres`) exist for the e2e tests: the
platform must process every event once across them. Nothing here touches the Kubernetes cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from opsbus.common.testing.servers import NatsServer, PostgresServer, _pg_user, free_port, postgres_bin_dir
from opsbus.demo.jaeger import Jaeger

SERVICES = ("watcher", "healer", "deployer", "optimizer", "notifier", "analyzer", "gateway")
# The watcher keeps no database; every other service owns one schema with its own migrations.
MIGRATED = ("healer", "deployer", "optimizer", "notifier", "analyzer", "gateway")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class StackOptions:
    """What differs between a demo and a test run. Paths must exist; namespaces scope the watcher and optimizer."""

    kubeconfig: Path
    notifier_config: Path
    namespaces: Sequence[str]
    healer_policy: Path | None = None
    cluster: str = "sandbox"
    gateway_port: int = 0  # 0: a free port
    workdir: Path | None = None  # None: a fresh temporary directory, removed by stop()
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # extra OPSBUS_* per service
    services: Sequence[str] = SERVICES
    admin_key_name: str = "admin"  # the admin API key made at start (`Stack.admin_key`) is named so
    jaeger: bool = True  # False: no Jaeger process and no trace export (benchmarks of the bare pipeline)


@dataclass
class ServiceProcess:
    """One service process; its log is `<workdir>/<name>.log` (JSON lines)."""

    name: str
    env: dict[str, str]
    http_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", f"opsbus.{self.name}", "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 240.0) -> None:
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"{self.name} exited with {code} before it was ready:\n{self.tail()}")
            try:
                answer = httpx.get(url, timeout=2.0)
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready within {timeout}s (last /readyz: {last}):\n{self.tail()}")

    def stop(self, *, kill: bool = False, grace: float = 20.0) -> int | None:
        """SIGTERM (or SIGKILL with kill=True) and wait; SIGKILL after `grace`. Returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"


@dataclass
class Stack:
    options: StackOptions
    progress: Progress = _quiet
    workdir: Path = field(init=False)
    nats: NatsServer = field(init=False)
    postgres: PostgresServer = field(init=False)
    jaeger: Jaeger = field(init=False)
    services: dict[str, ServiceProcess] = field(init=False, default_factory=dict)
    gateway_port: int = field(init=False)
    admin_key: str = field(init=False, default="")
    _owns_workdir: bool = field(init=False, default=False)
    _pg_started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.options.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="opsbus-stack-"))
            self._owns_workdir = True
        else:
            self.workdir = self.options.workdir
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.gateway_port = self.options.gateway_port or free_port()
        self.nats = NatsServer(port=free_port(), store_dir=self.workdir / "nats", log_path=self.workdir / "nats.log")
        # PostgreSQL gets a private temporary directory of its own: when we are root it runs as an unprivileged
        # user, which must own it (and could not reach into a directory under root's home).
        pg_dir = Path(tempfile.mkdtemp(prefix="opsbus-stack-pg-"))
        self.postgres = PostgresServer(
            port=free_port(),
            data_dir=pg_dir / "data",
            socket_dir=pg_dir,
            log_path=pg_dir / "postgres.log",
            bin_dir=postgres_bin_dir(),
        )
        self.jaeger = Jaeger(
            workdir=self.workdir / "jaeger",
            otlp_port=free_port(),
            query_port=free_port(),
            query_grpc_port=free_port(),
            health_port=free_port(),
        )

    # --- addresses -------------------------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def database_url(self) -> str:
        return self.postgres.url()

    def components(self) -> list[dict[str, str]]:
        """Where each part listens and how to tell it is ready (`tcp`: accepts connections; a URL: answers 200).

        What `opsbus dev status` checks; no secret (the database password) is in it.
        """
        parts = [
            {"name": "nats", "address": f"127.0.0.1:{self.nats.port}", "probe": "tcp"},
            {"name": "postgres", "address": f"127.0.0.1:{self.postgres.port}", "probe": "tcp"},
        ]
        if self.options.jaeger:
            url = self.jaeger.query_url
            parts.append({"name": "jaeger", "address": url, "probe": f"{url}/api/services"})
        for name, proc in self.services.items():
            url = f"http://127.0.0.1:{proc.http_port}"
            address = self.gateway_url if name == "gateway" else url
            parts.append({"name": name, "address": address, "probe": f"{url}/readyz"})
        return parts

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Bring everything up, in order; on any failure, stop what was started and raise."""
        try:
            self.progress(f"starting nats-server with JetStream on {self.nats.url}")
            self.nats.start()
            self.progress(f"starting PostgreSQL on 127.0.0.1:{self.postgres.port}")
            self._start_postgres()
            if self.options.jaeger:
                self.progress(
                    f"starting Jaeger (OTLP in on :{self.jaeger.otlp_port}, query on {self.jaeger.query_url})"
                )
                self.jaeger.start()
            migrated = [name for name in MIGRATED if name in self.options.services]
            self.progress(f"migrating the schemas of {', '.join(migrated)}")
            self.migrate(*migrated)
            # the first admin key is made while the services start (each is a Python process: imports take a while)
            key = self._start_admin_key(self.options.admin_key_name) if "gateway" in self.options.services else None
            for name in self.options.services:
                self.services[name] = self._service(name)
                self.services[name].start()
            for name in self.options.services:
                self.progress(f"waiting for {name} to be ready")
                self.services[name].wait_ready()
            if key is not None:
                self.admin_key = self._finish_admin_key(key)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Services first (gateway first, watcher last: the reverse of the data flow), then Jaeger, PostgreSQL, NATS."""
        for name in reversed(list(self.services)):
            if self.services[name].running:
                self.progress(f"stopping {name}")
            self.services[name].stop()
        self.jaeger.stop()
        if self._pg_started:
            self.progress("stopping PostgreSQL")
            try:
                self.postgres.stop("fast")
            except RuntimeError:
                self.postgres.stop("immediate")
            self._pg_started = False
        shutil.rmtree(self.postgres.socket_dir, ignore_errors=True)
        self.progress("stopping nats-server")
        self.nats.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def migrate(self, *names: str) -> None:
        """`python -m opsbus.<name> migrate upgrade` for each, in parallel (each owns its own schema)."""
        running = {
            name: subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", f"opsbus.{name}", "migrate", "upgrade"],
                env=self._env(name, http_port=0),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name in names
        }
        failed = []
        for name, proc in running.items():
            try:
                output, _ = proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            if proc.returncode != 0:
                failed.append(f"migrating {name} failed ({proc.returncode}):\n{output}")
        if failed:
            raise RuntimeError("\n".join(failed))

    def create_admin_key(self, name: str = "demo-admin") -> str:
        """A fresh admin API key, made the way an operator makes the first one (`python -m opsbus.gateway ...`)."""
        return self._finish_admin_key(self._start_admin_key(name))

    def _start_admin_key(self, name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "opsbus.gateway", "create-admin-key", "--name", name, "--ttl-days", "1"],
            env=self._env("gateway", http_port=0),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def _finish_admin_key(proc: subprocess.Popen[str], timeout: float = 300.0) -> str:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"create-admin-key failed ({proc.returncode}):\n{err}")
        return out.strip().splitlines()[-1]

    # --- chaos hooks (e2e) -----------------------------------------------------------------------------
    def kill_service(self, name: str) -> None:
        """kill -9: no shutdown at all, in-flight work abandoned mid-way."""
        self.services[name].stop(kill=True)

    def start_service(self, name: str) -> None:
        self.services[name].start()
        self.services[name].wait_ready()

    def restart_nats(self) -> None:
        """Stop nats-server (SIGTERM) and start it again on the same port with the same JetStream store."""
        self.nats.restart()

    def restart_postgres(self) -> None:
        """Fast shutdown (connections cut) and start again on the same port and data."""
        self.postgres.stop("fast")
        self.postgres.start()

    # --- internals -------------------------------------------------------------------------------------
    def _start_postgres(self) -> None:
        user = _pg_user()
        if user is not None:
            shutil.chown(self.postgres.socket_dir, user=user)
        self.postgres.init()
        self.postgres.start()
        self._pg_started = True

    def _service(self, name: str) -> ServiceProcess:
        port = free_port()
        return ServiceProcess(name=name, env=self._env(name, http_port=port), http_port=port, log_path=self._log(name))

    def _log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _env(self, name: str, *, http_port: int) -> dict[str, str]:
        kubeconfig = str(self.options.kubeconfig)
        namespaces = json.dumps(list(self.options.namespaces))
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OPSBUS_") or k == "OPSBUS_CACHE_DIR"}
        env = dict(inherited)
        env |= {
            "PYTHONUNBUFFERED": "1",
            "OPSBUS_ENVIRONMENT": "development",
            "OPSBUS_CLUSTER": self.options.cluster,
            "OPSBUS_INSTANCE": f"{name}-0",
            "OPSBUS_NATS__URL": self.nats.url,
            "OPSBUS_DATABASE__URL": self.database_url,
            "OPSBUS_DATABASE__POOL_SIZE": "5",
            "OPSBUS_HTTP__PORT": str(http_port),
            "OPSBUS_SHUTDOWN_GRACE_SECONDS": "5",
        }
        per_service = {
            "watcher": {"OPSBUS_WATCHER__KUBECONFIG": kubeconfig, "OPSBUS_WATCHER__NAMESPACES": namespaces},
            "healer": {"OPSBUS_HEALER__KUBECONFIG": kubeconfig},
            "deployer": {"OPSBUS_DEPLOYER__KUBECONFIG": kubeconfig},
            "optimizer": {"OPSBUS_OPTIMIZER__KUBECONFIG": kubeconfig, "OPSBUS_OPTIMIZER__NAMESPACES": namespaces},
            "notifier": {
                "OPSBUS_NOTIFIER__CONFIG_FILE": str(self.options.notifier_config),
                "OPSBUS_NOTIFIER__GATEWAY_URL": self.gateway_url,
                "OPSBUS_NOTIFIER__JAEGER_URL": self.jaeger.query_url,
            },
            "analyzer": {"OPSBUS_ANALYZER__KUBECONFIG": kubeconfig},
            "gateway": {
                "OPSBUS_GATEWAY__PORT": str(self.gateway_port),
                "OPSBUS_GATEWAY__PUBLIC_URL": self.gateway_url,
                # the console over plain http on 127.0.0.1: the session cookie without Secure (development only)
                "OPSBUS_GATEWAY__CONSOLE__INSECURE_LOOPBACK_COOKIE": "true",
                "OPSBUS_GATEWAY__CONSOLE__JAEGER_URL": self.jaeger.query_url,
            },
        }
        env |= per_service.get(name, {})
        if self.options.jaeger:
            env["OPSBUS_TELEMETRY__OTLP_ENDPOINT"] = self.jaeger.otlp_endpoint
        if name == "healer" and self.options.healer_policy is not None:
            env["OPSBUS_HEALER__POLICY_FILE"] = str(self.options.healer_policy)
        env |= dict(self.options.service_env.get(name, {}))
        return env
