"""The `opsbus` CLI against the real gateway (uvicorn, real NATS and PostgreSQL): login and its 0600 file,
whoami, keys create/list/revoke, events history; policies get/validate/put with the real healer and
recommendations list/apply with the real optimizer (both on the sandbox apiserver)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsbus.cli.main import app
from opsbus.common.bus import Bus
from tests.cluster.conftest import api_client, cluster, sandbox
from tests.cluster.kube import Cluster
from tests.cluster.test_healer_remediation import StartHealer, start_healer
from tests.cluster.test_optimizer_rightsizing import Start, create_deployment, idle, running, start_optimizer
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_gateway_stream_auth import alert_in

pytestmark = pytest.mark.integration
__all__ = ["api_client", "cluster", "sandbox", "start_healer", "start_optimizer"]  # cluster-test fixtures

POLICY = """policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    ladder:
      - {action: delete_pod, verify: pod_replaced, timeout: 60s}
"""


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


class Cli:
    def __init__(self, config: Path) -> None:
        self.config = config

    async def __call__(
        self, *args: str, key: str | None = None, url: str | None = None, stdin: str = ""
    ) -> tuple[int, str]:
        env = {"OPSBUS_CONFIG": str(self.config), "COLUMNS": "250", "OPSBUS_URL": url, "OPSBUS_API_KEY": key}
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env, input=stdin)
        return result.exit_code, result.output


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home" / "opsbus" / "config.json")


async def test_login_whoami_keys_and_events(
    stack: GatewayStack, cli: Cli, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    await stack.start()
    admin = await stack.key("admin")
    code, text = await cli("login", "--url", stack.url, "--api-key", "opsb_0000000000_" + "A" * 43)
    assert code == 1 and "401" in text and not cli.config.exists()  # a bad key is never stored
    code, text = await cli("login", "--url", stack.url, "--api-key", "not-a-key")
    assert code == 2 and "opsb_" in text
    code, text = await cli("login", "--url", stack.url, stdin=admin + "\n")  # asked for without echo
    assert code == 0, text
    assert "logged in" in text and "admin on namespaces all" in text and admin not in text
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    assert json.loads(cli.config.read_text()) == {"url": stack.url, "api_key": admin}

    # from now on no URL or key is given: the login file is used
    code, text = await cli("keys", "create", "ci-payments", "--role", "operator", "-n", "payments", "--ttl", "1d")
    assert code == 0, text
    token = next(line for line in text.splitlines() if line.startswith("opsb_"))
    code, text = await cli("whoami", key=token)
    assert code == 0 and "operator on namespaces payments in clusters all" in text
    code, text = await cli("keys", "list", "-o", "json")
    listed = {k["name"]: k for k in json.loads(text)["items"]}
    assert listed["ci-payments"]["role"] == "operator" and listed["ci-payments"]["expires_at"]
    assert token not in text
    code, text = await cli("keys", "create", "x", "--role", "root", "-n", "a")
    assert code == 1 and "422" in text
    code, text = await cli("keys", "revoke", listed["ci-payments"]["id"])
    assert code == 0 and "revoked" in text
    code, text = await cli("whoami", key=token)
    assert code == 1 and "401" in text and "opsbus login" in text

    bus = await make_bus("tester")
    await bus.ensure_streams()
    for i in range(3):
        await bus.publisher.publish(alert_in("payments", f"web-{i}"))
    code, text = await cli("events", "alert.>", "--since", "10m", "--limit", "2", "-o", "json")
    assert code == 0, text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [e["event"]["subject"] for e in lines] == ["Pod/payments/web-0", "Pod/payments/web-1"]
    code, text = await cli("events", "alert.>", "--after", str(lines[1]["sequence"]))
    assert code == 0 and "Pod/payments/web-2" in text and "web-1" not in text
    code, text = await cli("events", "alert.>", "--since", "yesterday")
    assert code == 2 and "--since" in text

    code, text = await cli("logout")
    assert code == 0 and not cli.config.exists()
    cli.config.parent.mkdir(parents=True, exist_ok=True)
    cli.config.write_text(json.dumps({"url": stack.url, "api_key": admin}))
    cli.config.chmod(0o644)
    code, text = await cli("whoami")
    assert code == 2 and "chmod 600" in text


@pytest.mark.cluster
async def test_policies_get_validate_put_with_the_real_healer(
    stack: GatewayStack, cli: Cli, start_healer: StartHealer, tmp_path: Path
) -> None:
    await start_healer(policies=POLICY)
    await stack.start()
    admin = await stack.key("admin")
    operator = await stack.key("operator")
    code, text = await cli("policies", "get", key=operator, url=stack.url)
    assert code == 0, text
    assert "# version 1: crashloop" in text and "KubePodCrashLooping" in text
    edited = tmp_path / "policies.yaml"
    code, text = await cli("policies", "get", "-f", str(edited), key=operator, url=stack.url)
    assert code == 0 and "--expected-version 1" in text and edited.read_text() == POLICY

    broken = tmp_path / "broken.yaml"
    broken.write_text(POLICY.replace("delete_pod", "delete_everything"))
    code, text = await cli("policies", "validate", str(broken), key=operator, url=stack.url)
    assert code == 1 and "not valid" in text and "policies.0.ladder.0.action (line 5, column 18)" in text
    edited.write_text(POLICY.replace("timeout: 60s", "timeout: 90s"))
    code, text = await cli("policies", "validate", "-", key=operator, url=stack.url, stdin=edited.read_text())
    assert code == 0 and "valid: crashloop" in text

    code, text = await cli("policies", "put", str(edited), "--expected-version", "1", key=operator, url=stack.url)
    assert code == 1 and "403" in text  # admins only
    code, text = await cli("policies", "put", str(edited), "--expected-version", "7", key=admin, url=stack.url)
    assert code == 1 and "409" in text
    code, text = await cli(
        "policies", "put", str(edited), "--expected-version", "1", "--comment", "slower pods", key=admin, url=stack.url
    )
    assert code == 0 and "policies version 2" in text, text
    code, text = await cli("policies", "get", "-o", "json", key=operator, url=stack.url)
    assert json.loads(text)["version"] == 2 and "timeout: 90s" in json.loads(text)["document"]
    code, text = await cli("policies", "put", str(broken), "--expected-version", "2", key=admin, url=stack.url)
    assert code == 1 and "422" in text


@pytest.mark.cluster
async def test_recommendations_list_and_apply_with_the_real_optimizer(
    cluster: Cluster, stack: GatewayStack, cli: Cli, start_optimizer: Start
) -> None:
    from opsbus.optimizer.testing import FakePrometheus  # noqa: PLC0415

    ns = cluster.namespace
    create_deployment(cluster, "web", 2)
    series = await running(cluster, "web", 2)
    await stack.start()
    async with AsyncExitStack() as exits:
        prom = await exits.enter_async_context(FakePrometheus(idle, lambda: series).running())
        optimizer = await start_optimizer(ns, prom.url, "recommend")
        await optimizer.cycle()
        operator = await stack.key("operator", namespaces=[ns])
        code, text = await cli("recommendations", "list", key=operator, url=stack.url)
        assert code == 0, text
        assert f"Deployment/{ns}/web" in text and "app: cpu 1000m->" in text and "mem 1024Mi->" in text
        code, text = await cli("recommendations", "list", "-o", "json", key=operator, url=stack.url)
        (rec,) = json.loads(text)["recommendations"]
        code, text = await cli("recommendations", "apply", rec["id"], "--dry-run", key=operator, url=stack.url)
        assert code == 0 and "dry run" in text and "nothing changed" in text
        code, text = await cli("recommendations", "apply", rec["id"], key=operator, url=stack.url)
        assert code == 0 and "applied" in text
        code, text = await cli("recommendations", "apply", rec["id"], key=operator, url=stack.url)
        assert code == 1 and "409" in text
        code, text = await cli("recommendations", "list", "--status", "applied", key=operator, url=stack.url)
        assert rec["id"] in text
