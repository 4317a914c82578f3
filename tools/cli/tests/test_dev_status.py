"""`opsbus dev status` against real things: the real `python -m opsbus.demo state`, the real sandbox.sh, and, for
the parts, a real nats-server, a real PostgreSQL and real HTTP servers answering `/readyz` (200, 503, nothing)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from opsbus.cli.main import app
from opsbus.common.testing.servers import free_port

SANDBOX = Path(__file__).resolve().parents[3] / "deploy" / "sandbox" / "sandbox.sh"


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b'{"status": "ok"}' if self.status == 200 else b'{"nats": "not connected"}'
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def readyz() -> Iterator[dict[int, str]]:
    """Two real HTTP servers on 127.0.0.1: one ready (200 on /readyz), one up but not ready (503)."""
    servers: dict[int, str] = {}
    running = []
    for status in (200, 503):
        handler = type(f"Readyz{status}", (_Readyz,), {"status": status})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        servers[status] = f"http://127.0.0.1:{server.server_address[1]}"
    yield servers
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dev_status(home: Path, sandbox_home: Path | None, *args: str) -> tuple[int, str]:
    env = {"OPSBUS_DEMO_HOME": str(home), "OPSBUS_SANDBOX_SCRIPT": str(SANDBOX), "COLUMNS": "200"}
    if sandbox_home is not None:
        env["OPSBUS_SANDBOX_HOME"] = str(sandbox_home)
    result = CliRunner().invoke(app, ["dev", "status", *args], env=env)
    return result.exit_code, result.output


def by_name(output: str) -> dict[str, dict[str, Any]]:
    answer = json.loads(output[: output.rindex("}") + 1])
    return {c["name"]: c for c in answer["components"]} | {"": answer}


def write_demo(home: Path, pid: int, components: list[dict[str, str]]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "demo.pid").write_text(str(pid))
    stack = {"pid": pid, "gateway_url": "http://127.0.0.1:1", "logs": str(home / "run"), "components": components}
    (home / "stack.json").write_text(json.dumps(stack))


def address(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def test_nothing_running_every_part_is_reported_and_the_exit_code_says_not_ready(tmp_path: Path) -> None:
    code, output = dev_status(tmp_path / "demo", tmp_path / "no-sandbox", "--output", "json")
    assert code == 1, output
    parts = by_name(output)
    assert parts[""]["phase"] == "stopped" and parts[""]["ready"] is False and parts[""]["pid"] is None
    assert parts["sandbox"]["state"] == "down" and "not running" in parts["sandbox"]["detail"]
    assert "opsbus sandbox up" in parts["sandbox"]["detail"]
    names = ["nats", "postgres", "jaeger", "watcher", "healer", "deployer", "optimizer", "notifier", "gateway"]
    for name in names:
        assert parts[name]["state"] == "not running" and "opsbus dev up" in parts[name]["detail"], name
    assert all(not part["ready"] for part in parts.values() if "ready" in part)
    code, table = dev_status(tmp_path / "demo", tmp_path / "no-sandbox")
    assert code == 1
    assert "local stack: stopped" in table and "not ready: sandbox, nats, postgres" in table


def test_running_parts_are_probed_where_the_demo_says_they_listen(
    tmp_path: Path, nats_url: str, database_url: str, readyz: dict[int, str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    write_demo(
        tmp_path / "demo",
        os.getpid(),  # a live process stands for the demo's supervisor
        [
            {"name": "nats", "address": address(nats_url), "probe": "tcp"},
            {"name": "postgres", "address": address(database_url), "probe": "tcp"},
            {"name": "healer", "address": readyz[200], "probe": f"{readyz[200]}/readyz"},
            {"name": "deployer", "address": readyz[503], "probe": f"{readyz[503]}/readyz"},
            {"name": "optimizer", "address": closed, "probe": f"{closed}/readyz"},
        ],
    )
    code, output = dev_status(tmp_path / "demo", tmp_path / "no-sandbox", "-o", "json")
    assert code == 1, output
    parts = by_name(output)
    assert parts[""]["phase"] == "running" and parts[""]["pid"] == os.getpid()
    assert {n: parts[n]["state"] for n in ("nats", "postgres", "healer", "deployer", "optimizer")} == {
        "nats": "ready",
        "postgres": "ready",
        "healer": "ready",
        "deployer": "up",
        "optimizer": "down",
    }
    assert "503" in parts["deployer"]["detail"] and "not connected" in parts["deployer"]["detail"]
    assert parts["jaeger"]["state"] == "not used" and parts["jaeger"]["ready"] is False
    code, table = dev_status(tmp_path / "demo", tmp_path / "no-sandbox")
    assert "local stack: running" in table and "not ready: sandbox, deployer, optimizer" in table


def test_a_stack_still_starting_says_so(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "demo.pid").write_text(str(os.getpid()))  # supervisor alive, parts not described yet
    code, output = dev_status(tmp_path / "demo", tmp_path / "no-sandbox", "-o", "json")
    parts = by_name(output)
    assert code == 1 and parts[""]["phase"] == "starting"
    assert {parts[n]["state"] for n in ("nats", "postgres", "gateway")} == {"starting"}


def test_state_left_by_a_killed_demo_is_not_taken_for_a_running_one(tmp_path: Path, nats_url: str) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_demo(tmp_path / "demo", gone.pid, [{"name": "nats", "address": address(nats_url), "probe": "tcp"}])
    code, output = dev_status(tmp_path / "demo", tmp_path / "no-sandbox", "-o", "json")
    parts = by_name(output)
    assert code == 1 and parts[""]["phase"] == "stopped" and parts["nats"]["state"] == "not running"


@pytest.mark.cluster
def test_exit_code_is_zero_when_the_sandbox_and_every_part_in_use_are_ready(
    tmp_path: Path, nats_url: str, readyz: dict[int, str]
) -> None:
    if subprocess.run(["bash", str(SANDBOX), "status"], capture_output=True, check=False).returncode != 0:
        pytest.skip("the sandbox cluster is not up (bash deploy/sandbox/sandbox.sh up)")
    write_demo(
        tmp_path / "demo",
        os.getpid(),
        [
            {"name": "nats", "address": address(nats_url), "probe": "tcp"},
            {"name": "gateway", "address": readyz[200], "probe": f"{readyz[200]}/readyz"},
        ],
    )
    code, output = dev_status(tmp_path / "demo", None, "-o", "json")
    parts = by_name(output)
    assert code == 0, output
    assert parts[""]["ready"] is True and parts["sandbox"]["state"] == "ready"
    assert parts["sandbox"]["address"].startswith("https://127.0.0.1:")


def dev(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["dev", *args], env={"OPSBUS_DEMO_HOME": str(home), "COLUMNS": "200"})
    return result.exit_code, result.output


def test_down_stops_the_running_stack_and_waits_for_it(tmp_path: Path) -> None:
    # a process standing for the demo's supervisor; not our child (init reaps it), as a demo in another terminal
    started = subprocess.run(
        ["bash", "-c", "sleep 120 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    supervisor = int(started.stdout.strip())
    try:
        write_demo(tmp_path / "demo", supervisor, [])
        code, output = dev(tmp_path / "demo", "down")
        assert code == 0, output
        with pytest.raises(ProcessLookupError):  # SIGTERM reached it and down waited until it was gone
            os.kill(supervisor, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGKILL)
    code, _ = dev(tmp_path / "nothing", "down")  # nothing running: nothing to do, not an error
    assert code == 0


def test_up_refuses_a_second_stack_while_one_runs(tmp_path: Path) -> None:
    write_demo(tmp_path / "demo", os.getpid(), [])
    code, _ = dev(tmp_path / "demo", "up", "--gateway-port", "0")
    assert code == 1  # the running one is left alone; nothing else was started


def test_every_dev_command_explains_itself() -> None:
    for command in ("up", "down", "status"):
        result = CliRunner().invoke(app, ["dev", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and len(result.output.split()) > 30, command
    overview = CliRunner().invoke(app, ["dev", "--help"], env={"COLUMNS": "200"}).output
    assert "make demo" in overview and "up" in overview and "status" in overview
