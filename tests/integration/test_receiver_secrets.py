"""Receivers added at run time with stored secrets, through the real gateway and the real notifier (real NATS,
PostgreSQL, and a webhook receiver on 127.0.0.1): a secret stored through the API, a routes version whose new
receiver refers to it, and an alert delivered to it with no restart. The value never comes back: not in an answer,
an audit entry or a log line. Key rotation re-encrypts every value, and the old key can then be removed."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from opsbus.common.bus import Bus
from opsbus.common.rpc import call
from opsbus.common.store import Database
from opsbus.notifier.domain.api import (
    ConfigVersion,
    GetConfigRequest,
    PutConfigRequest,
    PutReceiverSecretRequest,
    ReceiverSecretView,
    RotateReceiverSecretsRequest,
    RotateReceiverSecretsResponse,
)
from opsbus.notifier.secretstore import Keyring, key_id, receiver_secrets
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.notifier_stack import (
    MakeBus,
    Receiver,
    alert_fired,
    make_publisher,
    notifier_db,
    notifier_stack,
    outbox_events,
    webhook_receiver,
    yaml_config,
)
from tests.integration.notifier_stack import Stack as NotifierStack
from tests.integration.test_cli_operations import Cli, cli

pytestmark = pytest.mark.integration
__all__ = ["cli"]  # fixture

ADDED = """
route:
  receiver: added
  group_by: [alertname, namespace]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: added
    webhook_configs:
      - url: {secretRef: team-hook}
"""


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def notifier(database_url: str, nats_url: str) -> AsyncIterator[NotifierStack]:
    async for s in notifier_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for r in webhook_receiver():
        yield r


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async for d in notifier_db(database_url):
        yield d


@pytest.fixture
async def publisher_bus(make_bus: MakeBus) -> Bus:
    return await make_publisher(make_bus)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def problem(response: Any, status: int) -> dict[str, Any]:
    body: dict[str, Any] = ok(response, status)
    assert response.headers["content-type"].startswith("application/problem+json")
    return body


async def eventually(condition: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
    return found


async def test_a_receiver_added_through_the_api_gets_alerts_without_a_restart_and_its_secret_never_shows(
    stack: GatewayStack,
    notifier: NotifierStack,
    receiver: Receiver,
    publisher_bus: Bus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = Fernet.generate_key().decode()
    hook = receiver.url("/added-at-run-time")  # the secret: a webhook URL with its path
    await notifier.start(yaml_config(receiver.url("/first")), secrets={"keys": [key]})
    await stack.start()
    admin, operator = await stack.key("admin"), await stack.key("operator")
    scoped_admin = await stack.key("admin", namespaces=["payments"])
    put = {"value": hook, "comment": "team webhook"}

    for token in (operator, scoped_admin):  # admins of every namespace only, as for PUT /v1/routes
        async with stack.client(token) as c:
            problem(await c.put("/v1/receiver-secrets/team-hook", json=put), 403)
            problem(await c.get("/v1/receiver-secrets"), 403)
    async with stack.client(admin) as c:
        bad = [
            await c.put("/v1/receiver-secrets/Team%20Hook", json=put),  # not a valid name
            await c.put("/v1/receiver-secrets/team-hook", json={"value": ""}),
            await c.put("/v1/receiver-secrets/team-hook", json={**put, "surprise": 1}),
            await c.put("/v1/receiver-secrets/team-hook", json={"value": 5}),
        ]
        for answer in bad:
            problem(answer, 422)
        assert all(hook not in a.text for a in bad)

        stored = ok(await c.put("/v1/receiver-secrets/team-hook", json=put))
        assert stored["name"] == "team-hook" and stored["key_id"] == key_id(key) and stored["updated_by"]
        assert set(stored) == {"name", "key_id", "created_at", "updated_at", "updated_by"}
        listed = await c.get("/v1/receiver-secrets")
        assert [s["name"] for s in ok(listed)["secrets"]] == ["team-hook"] and hook not in listed.text

        missing = ADDED.replace("secretRef: team-hook", "secretRef: nobody")
        refused = problem(await c.put("/v1/routes", json={"yaml": missing, "expected_version": 1}), 422)
        assert (
            "receivers[0].webhook_configs[0].url" in refused["detail"]
            and "'nobody' does not exist" in refused["detail"]
        )
        version = ok(await c.put("/v1/routes", json={"yaml": ADDED, "expected_version": 1, "comment": "new team"}))
        assert version["version"] == 2 and version["active"] is True and hook not in json.dumps(version)

        await publisher_bus.publisher.publish(alert_fired())
        got = await eventually(lambda: _requests(receiver, "/added-at-run-time"))
        assert got[0].json()["receiver"] == "added"
        assert not await _requests(receiver, "/first")

        conflict = problem(await c.delete("/v1/receiver-secrets/team-hook"), 409)
        assert "configuration version 2" in conflict["detail"]
        problem(await c.delete("/v1/receiver-secrets/nobody"), 404)

        routes = [await c.get("/v1/routes"), await c.get("/v1/routes/config"), await c.get("/v1/receiver-secrets")]
        assert all(r.status_code == 200 and hook not in r.text for r in routes)

        audit = await eventually(lambda: _audit(c, "notify.secret.put"))
        assert audit[0]["target"]["name"] == "team-hook" and audit[0]["details"] == {"key_id": key_id(key)}
        assert audit[0]["actor"]["id"] and audit[0]["reason"] == "team webhook"
        everything = ok(await c.get("/v1/audit", params={"limit": 200}))
        assert hook not in json.dumps(everything)

    assert "team-hook" in caplog.text  # the logs say what happened...
    assert hook not in caplog.text and "/added-at-run-time" not in caplog.text  # ...never the value


async def _requests(receiver: Receiver, path: str) -> list[Any]:
    return [r for r in receiver.requests if r.path == path]


async def _audit(client: Any, action: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(await client.get("/v1/audit", params={"action": action}))["items"]
    return items


async def test_rotation_re_encrypts_every_value_and_the_old_key_can_then_go(
    notifier: NotifierStack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    hook = receiver.url("/rotated")
    nc = publisher_bus.nc
    await notifier.start(yaml_config(receiver.url("/first")), secrets={"keys": [old]})
    put = PutReceiverSecretRequest(name="team-hook", value=hook, updated_by="alice")
    assert (await call(nc, "notifier", "put_receiver_secret", put, ReceiverSecretView)).key_id == key_id(old)
    before = await _row(db)
    assert hook not in before.ciphertext and before.key_id == key_id(old)
    await notifier.stop(0)

    with pytest.raises(RuntimeError, match=f"key\\(s\\) {key_id(old)}"):  # the old key removed too early
        await notifier.start(yaml_config(receiver.url("/first")), secrets={"keys": [new]})
    with pytest.raises(RuntimeError, match="OPSBUS_NOTIFIER__SECRETS__KEYS is empty"):
        await notifier.start(yaml_config(receiver.url("/first")))

    await notifier.start(yaml_config(receiver.url("/first")), secrets={"keys": [new, old]})  # 1. add the new key
    request = RotateReceiverSecretsRequest(rotated_by="alice")
    rotated = await call(nc, "notifier", "rotate_receiver_secrets", request, RotateReceiverSecretsResponse)  # 2.
    assert (rotated.rotated, rotated.total, rotated.key_id) == (1, 1, key_id(new))
    after = await _row(db)
    assert after.key_id == key_id(new) and after.ciphertext != before.ciphertext
    assert Keyring([new]).decrypt(after.ciphertext) == hook
    audits = await _outbox_audits(db, "notify.secret.rotate")
    assert audits and audits[-1]["details"] == {"key_id": key_id(new), "rotated": 1, "total": 1}
    await notifier.stop(len(notifier.running) - 1)

    # 3. drop the old key: the notifier starts and delivers to the receiver whose URL is the rotated secret
    await notifier.start(yaml_config(receiver.url("/first")), secrets={"keys": [new]}, config_poll_seconds=0.2)
    await _put_routes(nc, ADDED)
    await publisher_bus.publisher.publish(alert_fired())
    await eventually(lambda: _requests(receiver, "/rotated"))


async def _row(db: Database) -> Any:
    async with db.sessions() as session:
        return (await session.execute(select(receiver_secrets))).one()


async def _outbox_audits(db: Database, action: str) -> list[dict[str, Any]]:
    events = await outbox_events(db, "io.opsbus.audit.recorded.v1")
    return [e["data"] for e in events if e["data"]["action"] == action]


async def _put_routes(nc: Any, text: str) -> None:
    current = await call(nc, "notifier", "get_config", GetConfigRequest(), ConfigVersion)
    request = PutConfigRequest(yaml=text, expected_version=current.version, author="alice", comment="added")
    await call(nc, "notifier", "put_config", request, ConfigVersion)


async def test_cli_puts_from_stdin_or_a_file_lists_rotates_and_deletes_and_never_takes_the_value_as_an_argument(
    stack: GatewayStack, notifier: NotifierStack, cli: Cli, tmp_path: Path
) -> None:
    key = Fernet.generate_key().decode()
    await notifier.start(yaml_config("http://127.0.0.1:9/first"), secrets={"keys": [key]})
    await stack.start()
    admin = await stack.key("admin")
    value = "https://hooks.slack.com/services/T0/B0/cli-secret-value"

    code, text = await cli(
        "secrets", "put", "slack-team", "--comment", "team channel", key=admin, url=stack.url, stdin=value + "\n"
    )
    assert code == 0, text
    assert "slack-team" in text and key_id(key) in text and value not in text
    hook_file = tmp_path / "hook.txt"
    hook_file.write_text("https://hooks.example.com/from-file\n", encoding="utf-8")
    code, text = await cli("secrets", "put", "file-hook", "-f", str(hook_file), key=admin, url=stack.url)
    assert code == 0, text
    code, text = await cli("secrets", "put", "slack-team", value, key=admin, url=stack.url)  # no value argument
    assert code == 2
    code, text = await cli("secrets", "put", "empty", key=admin, url=stack.url, stdin="")
    assert code == 2 and "empty" in text

    code, text = await cli("secrets", "list", "-o", "json", key=admin, url=stack.url)
    assert code == 0, text
    listed = json.loads(text)["secrets"]
    assert [s["name"] for s in listed] == ["file-hook", "slack-team"] and value not in text
    code, text = await cli("secrets", "rotate", key=admin, url=stack.url)
    assert code == 0 and f"2 secret(s) now under key {key_id(key)}" in text
    code, text = await cli("secrets", "delete", "file-hook", key=admin, url=stack.url)
    assert code == 0, text
    code, text = await cli("secrets", "delete", "file-hook", key=admin, url=stack.url)
    assert code == 1 and "404" in text
    operator = await stack.key("operator")
    code, text = await cli("secrets", "list", key=operator, url=stack.url)
    assert code == 1 and "403" in text
