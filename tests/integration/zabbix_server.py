"""A real Zabbix for the Zabbix tier: Debian's zabbix-server-pgsql against the test PostgreSQL and the PHP
frontend's JSON-RPC API on php-cli's built-in server, both on 127.0.0.1, started and stopped by a fixture.

- The database: Zabbix's schema and data (from /usr/share/zabbix-server-pgsql) take minutes to load as SQL on
  a loaded machine, so `make setup` loads them once into a throwaway PostgreSQL and keeps a `pg_dump` of it under
  `~/.cache/opsbus/zabbix/<version>/` (`python -m tests.integration.zabbix_server`, from
  tools/install.d/80-zabbix.sh); each test restores it into its own database in seconds.
- The frontend reads its configuration from /etc/zabbix/zabbix.conf.php only; the cached copy of
  /usr/share/zabbix beside the dump reads `ZBX_WEB_CONFIG` first, so tests never write to /etc.
- Bookworm has no zabbix_sender: `send()` speaks the sender protocol to the server's trapper port itself
  (`ZBXD\\x01`, a little-endian length, the JSON request), as zabbix_sender does.

Everything lives in a temporary directory and dies with the fixture; no Zabbix service is installed or started.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from opsbus.common.testing.servers import cache_dir, free_port, postgres_bin_dir, postgres_server

SERVER = Path("/usr/sbin/zabbix_server")
SQL = Path("/usr/share/zabbix-server-pgsql")
FRONTEND = Path("/usr/share/zabbix")
_CONFIG_LINE = "$configFile = CConfigFile::CONFIG_FILE_PATH;"
_CONFIG_ENV = "$configFile = getenv('ZBX_WEB_CONFIG') ?: CConfigFile::CONFIG_FILE_PATH;"


def version() -> str:
    """The installed server's version, e.g. `6.0.14` (the cache key)."""
    if not SERVER.exists() or shutil.which("php") is None:
        raise RuntimeError("Zabbix is not installed: `make setup` installs it (tools/install.d/80-zabbix.sh)")
    out = subprocess.run([str(SERVER), "-V"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"\(Zabbix\) (\d+\.\d+\.\d+)", out)
    if found is None:
        raise RuntimeError(f"cannot read Zabbix's version from {out[:200]!r}")
    return found.group(1)


def cached() -> Path:
    return cache_dir() / "zabbix" / version()


def _pg_env(password: str) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": password, "LC_ALL": "C.UTF-8"}


def build_cache() -> Path:
    """The database dump and the frontend copy, made once per Zabbix version (minutes for the dump)."""
    target = cached()
    target.mkdir(parents=True, exist_ok=True)
    frontend = target / "frontend"
    if not frontend.exists():
        work = Path(tempfile.mkdtemp(prefix="frontend.", dir=target))
        shutil.copytree(FRONTEND, work / "frontend", symlinks=True)
        base = work / "frontend" / "include" / "classes" / "core" / "ZBase.php"
        text = base.read_text()
        if _CONFIG_LINE not in text:
            raise RuntimeError(f"{base}: the configuration line to patch is not there (another Zabbix version?)")
        base.write_text(text.replace(_CONFIG_LINE, _CONFIG_ENV))
        (work / "frontend").rename(frontend)
        shutil.rmtree(work)
    dump = target / "zabbix.dump"
    if not dump.exists():
        bin_dir = postgres_bin_dir()
        with postgres_server() as pg:
            conn = ["-h", "127.0.0.1", "-p", str(pg.port), "-U", pg.user]
            psql = [str(bin_dir / "psql"), *conn, "-q", "-v", "ON_ERROR_STOP=1"]
            env = _pg_env(pg.password)
            subprocess.run([*psql, "-d", "postgres", "-c", "CREATE DATABASE zabbix"], check=True, env=env)
            for part in ("schema", "images", "data"):
                sql = gzip.decompress((SQL / f"{part}.sql.gz").read_bytes())
                subprocess.run([*psql, "-d", "zabbix"], input=sql, check=True, env=env, stdout=subprocess.DEVNULL)
            partial = dump.with_suffix(".partial")
            subprocess.run(
                [str(bin_dir / "pg_dump"), *conn, "-d", "zabbix", "-Fc", "-Z1", "--no-owner", "-f", str(partial)],
                check=True,
                env=env,
            )
            partial.rename(dump)
    return target


@dataclass
class Database:
    host: str
    port: int
    user: str
    password: str
    name: str


@dataclass
class Zabbix:
    api_url: str
    web_url: str
    trapper_port: int
    session: str
    log: Path

    def call(self, method: str, params: Any, *, auth: str | None = "session") -> Any:
        """One JSON-RPC call with the Admin session (or the given auth); its result, or an AssertionError."""
        body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
        if auth is not None:
            body["auth"] = self.session if auth == "session" else auth
        answer = httpx.post(self.api_url, json=body, headers={"Content-Type": "application/json-rpc"}, timeout=30)
        data = answer.json()
        assert "error" not in data, f"{method}: {data['error']}"
        return data["result"]

    def send(self, host: str, key: str, value: str) -> str:
        """A trapper value, as zabbix_sender sends it; the server's `info` (e.g. `processed: 1; failed: 0...`)."""
        payload = json.dumps({"request": "sender data", "data": [{"host": host, "key": key, "value": value}]}).encode()
        with socket.create_connection(("127.0.0.1", self.trapper_port), timeout=10) as s:
            s.sendall(b"ZBXD\x01" + struct.pack("<Q", len(payload)) + payload)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer[:5] == b"ZBXD\x01", answer[:40]
        (length,) = struct.unpack("<Q", answer[5:13])
        return str(json.loads(answer[13 : 13 + length])["info"])

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _restore(db: Database, dump: Path) -> None:
    bin_dir = postgres_bin_dir()
    conn = ["-h", db.host, "-p", str(db.port), "-U", db.user]
    env = _pg_env(db.password)
    subprocess.run(
        [str(bin_dir / "psql"), *conn, "-q", "-d", "postgres", "-c", f'CREATE DATABASE "{db.name}"'],
        check=True,
        env=env,
    )
    subprocess.run(
        [str(bin_dir / "pg_restore"), *conn, "-d", db.name, "--no-owner", "-j", "2", str(dump)], check=True, env=env
    )


def _drop(db: Database) -> None:
    bin_dir = postgres_bin_dir()
    conn = ["-h", db.host, "-p", str(db.port), "-U", db.user]
    subprocess.run(
        [
            str(bin_dir / "psql"),
            *conn,
            "-q",
            "-d",
            "postgres",
            "-c",
            f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)',
        ],
        check=False,
        env=_pg_env(db.password),
        capture_output=True,
    )


def _server_conf(tmp: Path, db: Database, port: int) -> Path:
    """A small server: one of each process it needs (trapper, escalator, alerter...), config synced every second."""
    conf = tmp / "zabbix_server.conf"
    conf.write_text(
        "\n".join(
            [
                f"LogFile={tmp / 'server.log'}",
                f"PidFile={tmp / 'server.pid'}",
                f"SocketDir={tmp}",
                f"TmpDir={tmp}",
                f"DBHost={db.host}",
                f"DBPort={db.port}",
                f"DBName={db.name}",
                f"DBUser={db.user}",
                f"DBPassword={db.password}",
                "ListenIP=127.0.0.1",
                f"ListenPort={port}",
                "AllowRoot=1",
                "CacheUpdateFrequency=1",
                "HousekeepingFrequency=0",
                "StartPollers=1",
                "StartPollersUnreachable=1",
                "StartPingers=0",
                "StartDiscoverers=0",
                "StartHTTPPollers=0",
                "StartTrappers=2",
                "StartDBSyncers=1",
                "StartAlerters=1",
                "StartEscalators=1",
                "StartTimers=1",
                "StartPreprocessors=1",
                "StartLLDProcessors=1",
                "StartReportWriters=0",
                "Timeout=10",
                "LogSlowQueries=0",
                "",
            ]
        )
    )
    return conf


def _web_conf(tmp: Path, db: Database, trapper_port: int) -> Path:
    conf = tmp / "zabbix.conf.php"
    conf.write_text(
        "<?php\n"
        f"$DB['TYPE'] = 'POSTGRESQL'; $DB['SERVER'] = '{db.host}'; $DB['PORT'] = '{db.port}';\n"
        f"$DB['DATABASE'] = '{db.name}'; $DB['USER'] = '{db.user}'; $DB['PASSWORD'] = '{db.password}';\n"
        "$DB['SCHEMA'] = ''; $DB['ENCRYPTION'] = false; $DB['KEY_FILE'] = ''; $DB['CERT_FILE'] = '';\n"
        "$DB['CA_FILE'] = ''; $DB['VERIFY_HOST'] = false; $DB['CIPHER_LIST'] = ''; $DB['VAULT_URL'] = '';\n"
        "$DB['VAULT_DB_PATH'] = ''; $DB['VAULT_TOKEN'] = ''; $DB['DOUBLE_IEEE754'] = true;\n"
        f"$ZBX_SERVER = '127.0.0.1'; $ZBX_SERVER_PORT = '{trapper_port}'; $ZBX_SERVER_NAME = 'opsbus-test';\n"
        "$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;\n"
    )
    return conf


def _tail(*logs: Path) -> str:
    return "\n".join(log.read_text(errors="replace")[-2000:] for log in logs if log.exists())


def _wait(what: str, ready: Any, procs: list[subprocess.Popen[bytes]], log: Path, timeout: float) -> None:
    logs = (log, log.with_suffix(".out"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: a process exited ({proc.returncode}): {_tail(*logs)}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready within {timeout:.0f}s: {_tail(*logs)}")


def _trapper_port() -> int:
    """A free port the server accepts: its ListenPort must be within 1024-32767 (below Linux's ephemeral range)."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise RuntimeError("no free port in 20000-32767 for the Zabbix trapper")


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@contextlib.contextmanager
def zabbix_server(database_url: str, *, timeout: float = 90.0) -> Iterator[Zabbix]:
    """Zabbix server and API on 127.0.0.1 with a database of their own on the server of `database_url`."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    cache = build_cache()
    url = make_url(database_url)
    db = Database(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        name=f"zbx_{uuid.uuid4().hex[:12]}",
    )
    tmp = Path(tempfile.mkdtemp(prefix="opsbus-zabbix-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _restore(db, cache / "zabbix.dump")
        trapper, web = _trapper_port(), free_port()
        server_log, web_log = tmp / "server.log", tmp / "php.log"
        server_log.touch()
        with (tmp / "server.out").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [str(SERVER), "-f", "-c", str(_server_conf(tmp, db, trapper))],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        env = {**os.environ, "ZBX_WEB_CONFIG": str(_web_conf(tmp, db, trapper))}
        with web_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    ["php", "-S", f"127.0.0.1:{web}", "-t", str(cache / "frontend")],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        _wait("zabbix_server", lambda: _port_open(trapper), procs, server_log, timeout)
        web_url = f"http://127.0.0.1:{web}"
        api = f"{web_url}/api_jsonrpc.php"
        login = {
            "jsonrpc": "2.0",
            "method": "user.login",
            "params": {"username": "Admin", "password": "zabbix"},
            "id": 1,
        }
        session: list[str] = []

        def logged_in() -> bool:
            answer = httpx.post(api, json=login, headers={"Content-Type": "application/json-rpc"}, timeout=30).json()
            session.append(answer["result"])
            return True

        _wait("the Zabbix API", logged_in, procs, web_log, timeout)
        yield Zabbix(api_url=api, web_url=web_url, trapper_port=trapper, session=session[-1], log=server_log)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _drop(db)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # tools/install.d/80-zabbix.sh: build the cache once
    print(build_cache(), file=sys.stderr)
