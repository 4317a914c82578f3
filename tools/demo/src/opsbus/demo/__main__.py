"""`python -m opsbus.demo up|down`: the whole platform on this machine, for trying opsbus by hand.

`up` (what `make demo` runs) brings the sandbox cluster up if it is not (and takes it down again at the end only if it
started it), starts nats-server, PostgreSQL, Jaeger and the seven services, seeds the `demo` namespace, prints the
gateway URL, an admin API key and three commands to try, then stays in the foreground until Ctrl-C (or
`make demo-down`).
Logs of every part are in the directory it prints. Nothing is kept between two demos: the bus and database are fresh.
`state` prints, as JSON, whether a demo runs and where each part listens (what `opsbus dev status` checks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from opsbus.demo.seeding import (
    WebhookReceiver,
    delete_namespace,
    seed_namespace,
    write_notifier_config,
    write_policies,
)
from opsbus.demo.stack import Stack, StackOptions
from opsbus.demo.versions import cache_dir, repo_root

NAMESPACE = "demo"
GATEWAY_PORT = 8000


def _say(message: str) -> None:
    sys.stderr.write(f"\033[1m==> {message}\033[0m\n")
    sys.stderr.flush()


def _state_dir() -> Path:
    return Path(os.environ.get("OPSBUS_DEMO_HOME", cache_dir() / "demo"))


def _pidfile() -> Path:
    return _state_dir() / "demo.pid"


def _stackfile() -> Path:
    """Where the running demo's parts listen (`state` prints it; `opsbus dev status` checks each part)."""
    return _state_dir() / "stack.json"


def _sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    script = repo_root() / "deploy" / "sandbox" / "sandbox.sh"
    return subprocess.run(  # noqa: S603 - the repo's own script
        ["bash", str(script), *args],  # noqa: S607 - bash from PATH, as `make` itself uses it
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _show_notification(body: dict[str, Any]) -> None:
    summary = body.get("title") or body.get("summary") or body.get("status") or json.dumps(body)[:160]
    _say(f"notification received by the demo webhook: {summary}")


def up(gateway_port: int) -> int:
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    if _pidfile().exists():
        pid = int(_pidfile().read_text().strip() or 0)
        if pid and _alive(pid):
            _say(f"a demo is already running (pid {pid}); stop it with `make demo-down`")
            return 1
    _say("checking the sandbox cluster (starts it if it is not up; ~10 s when cached)")
    started_sandbox = _sandbox("status").returncode != 0
    result = _sandbox("up")
    if result.returncode != 0:
        _say(f"the sandbox did not start:\n{result.stdout}{result.stderr}")
        return 1
    kubeconfig = Path(result.stdout.strip().splitlines()[-1])
    shutil.rmtree(state / "run", ignore_errors=True)  # a fresh bus and database every time
    receiver = WebhookReceiver(on_body=_show_notification)
    receiver.start()
    stack = Stack(
        StackOptions(
            kubeconfig=kubeconfig,
            namespaces=[NAMESPACE],
            notifier_config=write_notifier_config(state / "notifier.yaml", receiver.url),
            healer_policy=write_policies(state / "policies.yaml", NAMESPACE),
            gateway_port=gateway_port,
            workdir=state / "run",
            admin_key_name="demo-admin",
        ),
        progress=_say,
    )
    stopping = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    _pidfile().write_text(str(os.getpid()))
    try:
        _say(f"seeding namespace {NAMESPACE!r} (Deployments web, api, worker) and its remediation policies")
        seed_namespace(kubeconfig, NAMESPACE)
        stack.start()
        described = {"pid": os.getpid(), "gateway_url": stack.gateway_url, "logs": str(stack.workdir)}
        described |= {"kubeconfig": str(kubeconfig), "components": stack.components()}
        _stackfile().write_text(json.dumps(described, indent=2))
        _print_welcome(stack, stack.admin_key)
        while not stopping.wait(1.0):
            for name, proc in stack.services.items():
                if not proc.running:
                    _say(f"{name} stopped unexpectedly; last log lines:\n{proc.tail(1500)}")
                    stopping.set()
        _say("stopping the demo")
        return 0
    finally:
        _stackfile().unlink(missing_ok=True)
        stack.stop()
        receiver.stop()
        delete_namespace(kubeconfig, NAMESPACE)
        if started_sandbox:
            _say("stopping the sandbox cluster this demo started")
            _sandbox("down")
        _pidfile().unlink(missing_ok=True)
        _say("demo stopped")


def _print_welcome(stack: Stack, key: str) -> None:
    out = sys.stdout
    out.write(
        f"""
opsbus is running.

  gateway        {stack.gateway_url}   (API docs: {stack.gateway_url}/v1/docs)
  admin API key  {key}
  Jaeger         {stack.jaeger.query_url}/api/traces?service=opsbus-watcher   (query API)
  logs           {stack.workdir}

In another terminal, from this directory, first:

  export OPSBUS_URL={stack.gateway_url} OPSBUS_API_KEY={key}

then try:

  # 1. watch the events (leave it running)
  uv run opsbus tail 'alert.>'
  # 2. make one pod of the demo's `web` Deployment crash-loop
  bash deploy/sandbox/sandbox.sh chaos crashloop \\
    "$(bash deploy/sandbox/sandbox.sh kubectl -n {NAMESPACE} get pods -l app=web -o name | head -1)" {NAMESPACE}
  # 3. see the incident: the alert, its evidence, what the healer did, the notifications
  uv run opsbus incidents --namespace {NAMESPACE}

Ctrl-C (or `make demo-down`) stops everything.
"""
    )
    out.flush()


def down(timeout: float = 120.0) -> int:
    if not _pidfile().exists():
        _say("no demo is running")
        return 0
    pid = int(_pidfile().read_text().strip() or 0)
    if not pid or not _alive(pid):
        _pidfile().unlink(missing_ok=True)
        _say("no demo is running (removed a stale pid file)")
        return 0
    _say(f"stopping the demo (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _say("demo stopped")
            return 0
        time.sleep(0.5)
    _say(f"the demo (pid {pid}) did not stop within {timeout:.0f}s; its logs are in {_state_dir() / 'run'}")
    return 1


def state() -> int:
    """Print, as JSON, whether a demo runs and where its parts listen (`opsbus dev status` reads this)."""
    pid = 0
    if _pidfile().exists():
        pid = int(_pidfile().read_text().strip() or 0)
    running = bool(pid) and _alive(pid)
    stack: dict[str, Any] | None = None
    if running and _stackfile().exists():
        stack = json.loads(_stackfile().read_text())
        if stack.get("pid") != pid:  # left over from an earlier demo that was killed
            stack = None
    phase = "stopped" if not running else ("running" if stack else "starting")
    answer = {"state_dir": str(_state_dir()), "pid": pid if running else None, "phase": phase, "stack": stack}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsbus.demo", description="opsbus on this machine")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start the whole platform in the foreground (Ctrl-C stops it)")
    start.add_argument("--gateway-port", type=int, default=GATEWAY_PORT, help="port of the gateway API (0: any free)")
    sub.add_parser("down", help="stop a demo started by `up` in another terminal")
    sub.add_parser("state", help="print as JSON whether a demo runs and where its parts listen")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.gateway_port)
    if args.command == "state":
        return state()
    return down()


def run() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
