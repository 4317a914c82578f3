"""The `opsbus` CLI against the real gateway (real NATS and PostgreSQL): deploy, rollout, incidents, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from typer.testing import CliRunner

from opsbus.cli.main import app
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


async def opsbus(stack: GatewayStack, key: str | None, *args: str) -> tuple[int, str]:
    env = {"OPSBUS_URL": stack.url, "OPSBUS_API_KEY": key or "", "COLUMNS": "200"}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.output


async def test_cli_deploys_follows_and_explains_errors(stack: GatewayStack) -> None:
    await stack.start()
    operator = await stack.key("operator", namespaces=["payments"])
    code, text = await opsbus(
        stack,
        operator,
        "deploy",
        "payments/checkout",
        "-i",
        "app=registry.example.com/checkout:1.43",
        "--reason",
        "CHG-1",
    )
    assert code == 0, text
    assert "requested rolling of Deployment/payments/checkout" in text
    code, text = await opsbus(stack, operator, "deploy", "payments/checkout", "-i", "app=r/c:1", "-o", "json")
    request_id = json.loads(text)["request_id"]
    # no deployer runs in this test: the status query says so, with when to retry
    code, text = await opsbus(stack, operator, "rollout", request_id)
    assert code == 1 and "Service unavailable (503)" in text and "deployer" in text and "retry in" in text
    code, text = await opsbus(stack, operator, "deploy", "billing/api", "-i", "app=r/a:1")
    assert code == 1 and "Forbidden (403)" in text and "namespace billing" in text
    code, text = await opsbus(stack, operator, "incidents")
    assert code == 0 and "alert" in text
    code, text = await opsbus(stack, operator, "silence", "create", 'namespace="payments"', "--comment", "x")
    assert code == 1 and "503" in text and "retry in" in text
    code, text = await opsbus(stack, "opsb_0000000000_" + "A" * 43, "incidents")
    assert code == 1 and "OPSBUS_API_KEY" in text


def test_help_is_written_for_people() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("deploy", "incidents", "approve", "reject", "silence", "tail", "sandbox"):
        assert command in result.output
    sandbox = CliRunner().invoke(app, ["sandbox", "--help"])
    assert "chaos" in sandbox.output and "heal" in sandbox.output
