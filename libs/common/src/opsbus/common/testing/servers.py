"""Start private nats-server (JetStream) and PostgreSQL instances for tests.

Each server binds 127.0.0.1 on a free port, keeps its data in a temporary directory and is stopped and
removed when the context exits. Binaries come from the repo's install step (`make setup`): nats-server from
the cache keyed by version, PostgreSQL from Debian's packages. Set `OPSBUS_NATS_SERVER` or `OPSBUS_PG_BIN`
to use others.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_REPO_MARKER = Path("tools") / "versions.env"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _versions() -> dict[str, str]:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / _REPO_MARKER
        if candidate.exists():
            pairs = (
                line.split("=", 1)
                for line in candidate.read_text().splitlines()
                if "=" in line and not line.startswith("#")
            )
            return {key.strip(): value.strip() for key, value in pairs}
    return {}


def cache_dir() -> Path:
    return Path(os.environ.get("OPSBUS_CACHE_DIR", Path.home() / ".cache" / "opsbus"))


def nats_server_binary() -> Path:
    explicit = os.environ.get("OPSBUS_NATS_SERVER")
    if explicit:
        return Path(explicit)
    version = _versions().get("NATS_SERVER_VERSION", "")
    cached = cache_dir() / "nats-server" / version / "nats-server"
    if version and cached.exists():
        return cached
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError("nats-server not found: run `make setup` (or set OPSBUS_NATS_SERVER)")


def postgres_bin_dir() -> Path:
    explicit = os.environ.get("OPSBUS_PG_BIN")
    if explicit:
        return Path(explicit)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise FileNotFoundError("PostgreSQL server binaries not found: run `make setup` (or set OPSBUS_PG_BIN)")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s:\n{log.read_text()[-3000:]}")


def _wait_for_healthz(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/healthz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nats-server /healthz not ready within {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class NatsServer:
    """A running private nats-server; `restart()` keeps its JetStream store (for crash tests)."""

    port: int
    store_dir: Path
    log_path: Path
    monitor_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    # Extra nats-server configuration (e.g. an `authorization` block); written next to the log, passed with -c.
    config: str = ""

    def __post_init__(self) -> None:
        if not self.monitor_port:
            self.monitor_port = free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            str(nats_server_binary()),
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-js",
            "-sd", str(self.store_dir),
            "--http_port", str(self.monitor_port),
        ]  # fmt: skip
        if self.config:
            conf = self.log_path.with_name("nats.conf")
            conf.write_text(self.config)
            args += ["-c", str(conf)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        log.close()
        _wait_for_port(self.port, self.proc, self.log_path, "nats-server")
        # Listening is not ready: JetStream and the accounts are set up just after, and a client that connects
        # in between can see its interest dropped (requests then get "no responders"). Wait for /healthz.
        _wait_for_healthz(self.monitor_port, self.proc, self.log_path)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


@contextlib.contextmanager
def nats_server(config: str = "") -> Iterator[NatsServer]:
    """A private nats-server; `config` is extra configuration text (an `authorization` block, say)."""
    with tempfile.TemporaryDirectory(prefix="opsbus-nats-") as tmp:
        server = NatsServer(
            port=free_port(), store_dir=Path(tmp) / "js", log_path=Path(tmp) / "nats.log", config=config
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    socket_dir: Path
    log_path: Path
    bin_dir: Path
    user: str = "opsbus"
    password: str = "opsbus-test"  # noqa: S105 - a throwaway local test server

    def url(self, database: str = "postgres", *, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        result = subprocess.run(args, capture_output=True, check=False, env=env, user=_pg_user())  # noqa: S603
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout.decode()}{result.stderr.decode()}")

    def init(self) -> None:
        pwfile = self.data_dir.parent / "pw"
        pwfile.write_text(self.password)
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--pwfile", str(pwfile),
            "-A", "scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root: when we are root, run it as an unprivileged system user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user exists to run PostgreSQL")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    tmp = Path(tempfile.mkdtemp(prefix="opsbus-pg-"))
    try:
        user = _pg_user()
        if user is not None:
            shutil.chown(tmp, user=user)
        server = PostgresServer(
            port=free_port(),
            data_dir=tmp / "data",
            socket_dir=tmp,
            log_path=tmp / "postgres.log",
            bin_dir=postgres_bin_dir(),
        )
        server.init()
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError):
                server.stop("immediate")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
