"""Editing the notifier's routing configuration through its request-reply endpoints, against real NATS and
PostgreSQL: versions, optimistic concurrency (409), validation with YAML path and line, literal secrets refused,
every replica reloading the new version, and the configuration file seeding a version only when it changed."""

# ruff: noqa: F811 - the fixtures are imported from test_notifier_delivery and named as parameters

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from opsbus.common.bus import Bus
from opsbus.common.rpc import RpcError, call
from opsbus.common.store import Database
from opsbus.notifier import store
from opsbus.notifier.domain.api import (
    ConfigVersion,
    ConfigVersionList,
    Empty,
    GetConfigRequest,
    ListConfigVersionsRequest,
    PutConfigRequest,
    RoutesView,
    ValidateRoutesRequest,
    ValidateRoutesResponse,
)
from tests.integration.test_notifier_delivery import (  # noqa: F401 - fixtures
    Receiver,
    Stack,
    _count,
    alert_fired,
    db,
    outbox_events,
    publisher_bus,
    receiver,
    stack,
    wait_for,
    yaml_config,
)

pytestmark = pytest.mark.integration

ROUTED_TO_OTHER = """
route:
  receiver: other
  group_by: [alertname, namespace]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: other
    webhook_configs:
      - url: ${OTHER_URL}
        secret: ${HOOK_SECRET}
"""


MISSING_CA = """
route:
  receiver: mail
receivers:
  - name: mail
    email_configs:
      - to: [oncall@example.com]
        from: opsbus@example.com
        smarthost: 127.0.0.1:25
        ca_file: no-such-dir/opsbus-test-ca.pem
"""


@pytest.fixture
async def other() -> Receiver:
    r = Receiver()
    server = await asyncio.start_server(r._serve, "127.0.0.1", 0)
    r.port = server.sockets[0].getsockname()[1]
    r.server = server  # type: ignore[attr-defined]
    return r


async def _get(bus: Bus, version: int | None = None) -> ConfigVersion:
    return await call(bus.nc, "notifier", "get_config", GetConfigRequest(version=version), ConfigVersion)


async def _put(bus: Bus, yaml_text: str, expected: int) -> ConfigVersion:
    request = PutConfigRequest(yaml=yaml_text, expected_version=expected, author="alice@example.com", comment="move")
    return await call(bus.nc, "notifier", "put_config", request, ConfigVersion)


async def _validate(bus: Bus, text: str) -> ValidateRoutesResponse:
    return await call(bus.nc, "notifier", "validate_routes", ValidateRoutesRequest(yaml=text), ValidateRoutesResponse)


async def test_put_config_is_versioned_refuses_stale_versions_and_every_replica_applies_it(
    stack: Stack, receiver: Receiver, other: Receiver, publisher_bus: Bus, db: Database
) -> None:
    stack.env = {"OTHER_URL": other.url("/other")}
    first_yaml = yaml_config(receiver.url(), group_wait="0s")
    try:
        await stack.start(first_yaml, config_poll_seconds=0.2)
        await stack.start(first_yaml, config_poll_seconds=0.2)
        bus = publisher_bus

        seeded = await _get(bus)
        assert (seeded.version, seeded.source, seeded.active) == (1, "file", True)
        assert receiver.url() not in seeded.yaml and seeded.redacted  # the file's literal URL is not read back
        routes = await call(bus.nc, "notifier", "get_routes", Empty(), RoutesView)
        assert routes.version == 1 and routes.route.receiver == "team"

        put = await _put(bus, ROUTED_TO_OTHER, expected=1)
        assert (put.version, put.source, put.author, put.active) == (2, "api", "alice@example.com", True)
        assert put.yaml == ROUTED_TO_OTHER and not put.redacted

        with pytest.raises(RpcError) as stale:  # an edit based on version 1, after version 2 was put
            await _put(bus, ROUTED_TO_OTHER.replace("1m", "2m"), expected=1)
        assert stale.value.code == 409 and "version 2 is in force, not 1" in stale.value.description

        async def both_replicas_on_2() -> bool:
            answers = [await call(bus.nc, "notifier", "get_routes", Empty(), RoutesView) for _ in range(6)]
            return all(a.version == 2 and a.route.receiver == "other" for a in answers)

        await wait_for(both_replicas_on_2)
        await bus.publisher.publish(alert_fired())
        await wait_for(lambda: _count(other, 1))
        await asyncio.sleep(0.5)
        assert len(other.requests) == 1 and other.requests[0].path == "/other"
        assert receiver.requests == []

        history = await call(bus.nc, "notifier", "list_config_versions", ListConfigVersionsRequest(), ConfigVersionList)
        assert [(v.version, v.source, v.active) for v in history.versions] == [(2, "api", True), (1, "file", False)]
        assert (await _get(bus, 1)).version == 1
        with pytest.raises(RpcError) as missing:
            await _get(bus, 99)
        assert missing.value.code == 404
        audits = await outbox_events(db, "io.opsbus.audit.recorded.v1")
        puts = [a["data"] for a in audits if a["data"]["action"] == "notify.config.put"]
        assert [(p["details"]["version"], p["details"]["source"]) for p in puts] == [(1, "file"), (2, "api")]
        assert puts[1]["actor"]["id"] == "alice@example.com"
    finally:
        other.server.close()  # type: ignore[attr-defined]


async def test_invalid_configs_are_refused_with_path_and_line_and_nothing_changes(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    await stack.start(yaml_config(receiver.url()))
    bus = publisher_bus
    bad = ROUTED_TO_OTHER.replace("group_wait: 0s", "group_wait: 5x")
    answer = await _validate(bus, bad)
    assert not answer.valid
    assert [(i.path, i.line) for i in answer.issues] == [("route.group_wait", 5)]
    assert answer.problems == ["route.group_wait (line 5): invalid duration '5x': use e.g. 30s, 5m, 4h, 1h30m"]

    unknown = ROUTED_TO_OTHER.replace("receiver: other\n  group_by", "receiver: nobody\n  group_by")
    answer = await _validate(bus, unknown)
    assert [(i.path, i.line, i.message) for i in answer.issues] == [("route.receiver", 3, "unknown receiver 'nobody'")]

    literal = ROUTED_TO_OTHER.replace("${OTHER_URL}", "https://hooks.example.com/T000/B000/XXXXSECRET")
    answer = await _validate(bus, literal)
    assert [(i.path, i.line) for i in answer.issues] == [("receivers[0].webhook_configs[0].url", 11)]

    for text, expected in (
        (bad, "route.group_wait (line 5): invalid duration '5x'"),
        (literal, "receivers[0].webhook_configs[0].url (line 11): a secret must come from the environment"),
        (ROUTED_TO_OTHER, "environment variable OTHER_URL is not set"),  # unset in this notifier's environment
        ("route: [\n", "not valid YAML (line 2"),
        (MISSING_CA, "email ca_file no-such-dir/opsbus-test-ca.pem: no such file"),
    ):
        with pytest.raises(RpcError) as refused:
            await _put(bus, text, expected=1)
        assert refused.value.code == 422 and expected in refused.value.description, refused.value.description
        assert "XXXXSECRET" not in refused.value.description
    async with db.sessions() as session:
        versions = (await session.execute(select(store.config_versions.c.version))).scalars().all()
    assert list(versions) == [1]


async def test_the_file_seeds_a_version_only_when_it_changed(
    stack: Stack, receiver: Receiver, publisher_bus: Bus
) -> None:
    stack.env = {"OTHER_URL": receiver.url("/other")}
    first_yaml = yaml_config(receiver.url())
    await stack.start(first_yaml)
    await _put(publisher_bus, ROUTED_TO_OTHER, expected=1)
    await stack.stop(0)

    await stack.start(first_yaml)  # same file: the version put through the API stays in force
    now = await _get(publisher_bus)
    assert (now.version, now.source, now.active) == (2, "api", True)
    await stack.stop(1)

    await stack.start(first_yaml.replace("1m", "2m"))  # a changed file (a redeploy) wins
    now = await _get(publisher_bus)
    assert (now.version, now.source, now.active) == (3, "file", True)
    routes = await call(publisher_bus.nc, "notifier", "get_routes", Empty(), RoutesView)
    assert routes.route.group_interval_seconds == 120
