"""NATS least privilege, proven against a real nats-server with JetStream and the generated authorization.

The server runs with the block `python -m opsbus.common.bus.permissions --format nats-conf` prints (with
literal passwords). For each service, connected as its own user: stream provisioning, publishing every event
the catalogue says it publishes, its durable consumers (created, pulled, acked, and a poison message
dead-lettered), its request-reply endpoints and its ephemeral reads all succeed. Operations outside its
role are refused by the server (nats-py reports "Permissions Violation" through the error callback) and
nothing lands in the streams. A drift check ties the declared durables to the `ConsumerSpec`s in the
services' code.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.micro.service import Service
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from opsbus.common import rpc
from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.bus.permissions import (
    ROLES,
    SERVICES,
    Permissions,
    Role,
    all_permissions,
    nats_conf,
    published_subjects,
    role,
    user_name,
)
from opsbus.common.errors import PermanentError
from opsbus.common.events.catalog import ALL_STREAMS, FAMILIES
from opsbus.common.events.envelope import Envelope, new_event_id
from opsbus.common.events.examples import example_events
from opsbus.common.settings import NatsSettings
from opsbus.common.testing.servers import NatsServer, nats_server

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "prod"  # the example events' cluster
PASSWORDS = {s: f"test-password-{s}" for s in SERVICES}
ADMIN = Permissions("admin", "admin", (">",), (">",), allow_responses=False)


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    conf = nats_conf([*all_permissions(CLUSTER), ADMIN], passwords={**PASSWORDS, "admin": "admin-password"})
    with nats_server(config=conf) as srv:
        yield srv


async def _bus(server: NatsServer, service: str) -> Bus:
    settings = NatsSettings.model_validate(
        {"url": server.url, "user": user_name(service), "password": PASSWORDS[service], "publish_retries": 0}
    )
    return await Bus.connect(settings, service=service, registry=CollectorRegistry(), shutdown_grace=2.0)


@pytest.fixture
async def admin(server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(server.url, user="admin", password="admin-password")
    yield nc
    await nc.drain()


def _fresh(event: Envelope) -> Envelope:
    return event.model_copy(update={"id": new_event_id()})


def _examples_published_by(service: str) -> list[Envelope]:
    found = []
    for event in example_events().values():
        fam, verb = event.nats_subject().split(".")[:2]
        if any(f.name == fam and service in f.producers_of(verb) for f in FAMILIES):
            found.append(_fresh(event))
    return found


def _producer_of(subject: str) -> str:
    fam, verb = subject.split(".")[:2]
    for f in FAMILIES:
        if f.name == fam:
            return next(p for p in f.producers_of(verb) if p in SERVICES)
    raise KeyError(subject)


def _example_on(pattern: str) -> Envelope:
    """An example event whose subject matches a filter pattern such as `alert.fired.>`."""
    for event in example_events().values():
        if _matches(pattern, event.nats_subject()):
            return _fresh(event)
    raise KeyError(pattern)


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def _specs(r: Role) -> list[ConsumerSpec]:
    """The service's consumer specs, narrowed to the test cluster as the services narrow them."""
    return [
        ConsumerSpec(
            durable=d.on(CLUSTER).name,
            stream=d.stream,
            subjects=[s.replace(".>", f".{CLUSTER}.>") if s.count(".") == 2 else s for s in d.subjects],
            backoff=(0.05,),
            max_deliver=2,
            fetch_timeout=0.2,
        )
        for d in r.durables
    ]


class Ping(BaseModel):
    text: str


async def _denied(server: NatsServer, service: str, action: str, subject: str) -> str:
    """Run one raw operation as `service`; return the server's permission error for it."""
    errors: list[str] = []
    reported = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))
        reported.set()

    nc = await nats.connect(
        server.url, user=user_name(service), password=PASSWORDS[service], error_cb=on_error, allow_reconnect=False
    )
    try:
        if action == "publish":
            await nc.publish(subject, b"{}")
        else:
            await nc.subscribe(subject)
        await nc.flush()
        async with asyncio.timeout(5):
            await reported.wait()
    finally:
        await nc.close()
    return errors[0]


# --- allowed: each service's real bus operations ---------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
async def test_service_operations_succeed_with_its_own_permissions(
    server: NatsServer, admin: Client, service: str
) -> None:
    r = role(service)
    bus = await _bus(server, service)
    peers: dict[str, Bus] = {}
    served: list[Service] = []
    try:
        provisioned = await bus.ensure_streams()
        assert len(provisioned) == len(ALL_STREAMS), provisioned

        if service == "watcher":
            # Its restart scan (the real code) reads back the alert it fired, before the resolve is published.
            from opsbus.watcher.executing import read_firing  # noqa: PLC0415 - only this case needs the watcher

            await bus.publisher.publish(_example_on("alert.fired.>"))
            firing = await read_firing(bus.js, CLUSTER, timeout=1.0)
            assert firing, "the watcher could not read back the alert it fired"

        # Every event type the catalogue says it publishes is accepted by its stream.
        events = _examples_published_by(service)
        assert events or not published_subjects(service)
        for event in events:
            ack = await bus.publisher.publish(event)
            assert ack.seq > 0, event.type

        # Its durable consumers: created, pulled, acked; a poison message is dead-lettered to dlq.<subject>.
        for spec in _specs(r):
            event = _example_on(spec.subjects[0])
            poison = _fresh(event)
            seen: set[str] = set()
            both = asyncio.Event()

            wanted, poison_id = frozenset({event.id, poison.id}), poison.id

            async def handle(
                d: Delivery,
                seen: set[str] = seen,
                both: asyncio.Event = both,
                wanted: frozenset[str] = wanted,
                poison_id: str = poison_id,
            ) -> None:
                seen.add(d.event.id)
                if wanted <= seen:
                    both.set()
                if d.event.id == poison_id:
                    raise PermanentError("poison for the permissions test")

            consumer = bus.consumer(spec, handle)
            await consumer.start()
            try:
                producer = _producer_of(event.nats_subject())
                if producer not in peers:
                    peers[producer] = await _bus(server, producer)
                await peers[producer].publisher.publish(event)
                await peers[producer].publisher.publish(poison)
                async with asyncio.timeout(10):
                    await both.wait()
                js = admin.jetstream()
                async with asyncio.timeout(10):
                    while True:
                        info = await js.consumer_info(spec.stream, spec.durable)
                        if info.num_ack_pending == 0 and info.num_pending == 0:
                            break
                        await asyncio.sleep(0.05)
                dead = await js.get_last_msg("DLQ", f"dlq.{event.nats_subject()}")
                assert dead.headers is not None and dead.headers["Opsbus-Dlq-Consumer"] == spec.durable
                assert Envelope.from_json(dead.data or b"").id == poison.id
            finally:
                await consumer.stop()

        # Request-reply: it serves its endpoints; the gateway calls them; discovery answers.
        if r.serves_rpc:

            async def echo(req: Ping) -> Ping:
                return Ping(text=f"{service}:{req.text}")

            svc = await rpc.serve(bus.nc, service, "0.0.0", [rpc.Endpoint("permcheck", Ping, Ping, echo)])
            served.append(svc)
            caller = peers.get("gateway") or await _bus(server, "gateway")
            peers["gateway"] = caller
            answer = await rpc.call(caller.nc, service, "permcheck", Ping(text="hi"), Ping)
            assert answer.text == f"{service}:hi"
            ping = await admin.request(f"$SRV.PING.opsbus-{service}", b"", timeout=5)
            assert b"opsbus-" + service.encode() in ping.data
        for target in r.calls:
            # Calling is allowed; nobody serves the endpoint here, so the server says "no responders".
            with pytest.raises(rpc.ServiceUnavailableError):
                await rpc.call(bus.nc, target, "permcheck", Ping(text="x"), Ping, timeout=0.5)

        # Short-lived reads (ordered consumers, history pages) of the streams it reads.
        for stream in r.reads:
            family = next(f for f in FAMILIES if f.stream == stream) if stream != "DLQ" else None
            pattern = f"{family.name}.>" if family else "dlq.>"
            ordered = await bus.js.subscribe(
                pattern, stream=stream, ordered_consumer=True, idle_heartbeat=5.0, deliver_policy=DeliverPolicy.ALL
            )
            await ordered.unsubscribe()
            page = await bus.js.pull_subscribe(
                pattern, stream=stream, config=ConsumerConfig(ack_policy=AckPolicy.NONE, mem_storage=True)
            )
            name = (await page.consumer_info()).name
            await page.unsubscribe()
            await bus.js.delete_consumer(stream, name)
    finally:
        for svc in served:
            await svc.stop()
        for peer in peers.values():
            await peer.close()
        await bus.close()


# --- denied: operations outside each role ----------------------------------------------------------------------

DENIED = [
    ("watcher", "publish", "deploy.requested.prod.payments"),
    ("notifier", "publish", "recovery.approved.prod.payments"),
    ("healer", "publish", "recovery.approved.prod.payments"),
    ("deployer", "publish", "deploy.requested.prod.payments"),
    ("optimizer", "publish", "alert.fired.prod.payments"),
    ("gateway", "publish", "scale.applied.prod.payments"),
    ("watcher", "publish", "opsbus.svc.healer.approve"),
    ("notifier", "publish", "$JS.API.STREAM.DELETE.ALERT"),
    ("gateway", "publish", "$JS.API.STREAM.PURGE.AUDIT"),
    ("notifier", "publish", "$JS.API.CONSUMER.MSG.NEXT.ALERT.healer-alerts"),
    ("optimizer", "publish", "$JS.API.CONSUMER.DURABLE.CREATE.DEPLOY.deployer-requests"),
    ("watcher", "publish", "$JS.ACK.ALERT.healer-alerts.1.1.1.1.0"),
    ("deployer", "publish", "dlq.alert.fired.prod.payments"),
    ("gateway", "subscribe", "alert.>"),
    ("watcher", "subscribe", "opsbus.svc.healer.>"),
    ("healer", "subscribe", "opsbus.svc.deployer.>"),
]


@pytest.mark.parametrize(("service", "action", "subject"), DENIED)
async def test_operations_outside_the_role_are_denied(
    server: NatsServer, admin: Client, service: str, action: str, subject: str
) -> None:
    subject = subject.replace(".payments", f".denied-{new_event_id()[-12:]}")  # nothing else ever used it
    error = await _denied(server, service, action, subject)
    assert "permissions violation" in error.lower(), error
    assert subject.lower() in error.lower(), error  # nats-py lower-cases the server's message
    if action == "publish" and not subject.startswith(("$", "opsbus.")):
        js = admin.jetstream()
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.get_last_msg(next(f.stream for f in ALL_STREAMS if subject.startswith(f.name + ".")), subject)


async def test_a_wrong_password_is_refused(server: NatsServer) -> None:
    nc = Client()
    try:
        with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
            await nc.connect(server.url, user=user_name("watcher"), password="wrong", allow_reconnect=False)
    finally:
        await nc.close()  # nats-py leaves the refused socket open otherwise


# --- drift: the declared durables are the services' real ones ---------------------------------------------------


def _durables_in_source(service: str) -> set[tuple[str | None, str]]:
    """(stream, durable) of every `ConsumerSpec(durable="<literal>", ...)` in the service's source."""
    found: set[tuple[str | None, str]] = set()
    for path in (REPO / "services" / service / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ConsumerSpec":
                kw = {k.arg: k.value for k in node.keywords}
                durable, stream = kw.get("durable"), kw.get("stream")
                if isinstance(durable, ast.Constant) and isinstance(durable.value, str):
                    st = stream.value if isinstance(stream, ast.Constant) and isinstance(stream.value, str) else None
                    found.add((st, durable.value))
    return found


def _real_specs(service: str) -> list[ConsumerSpec]:
    """Specs the services build in `consumer_specs(settings)` (the rest are literals, read by `_durables_in_source`)."""
    from tests.integration.test_dlq_contract import consumer_specs  # noqa: PLC0415

    return consumer_specs(service)


@pytest.mark.parametrize("service", SERVICES)
def test_declared_durables_match_the_services_consumer_specs(service: str) -> None:
    declared = {(d.stream, d.on(CLUSTER).name): d for d in role(service).durables}
    literal = _durables_in_source(service)
    real = _real_specs(service)
    legacy = {s.legacy_durable for s in real}  # the base names per-cluster specs are built from (`bus.clusters`)
    literal = {(stream, name) for stream, name in literal if name not in legacy}
    in_code = {name for _, name in literal} | {s.durable for s in real}
    assert in_code == {name for _, name in declared}, (
        f"{service}: durables in its code {sorted(in_code)} differ from opsbus.common.bus.permissions.ROLES "
        f"{sorted(n for _, n in declared)}: update ROLES, then regenerate the NATS authorization"
    )
    for stream, name in literal:
        assert stream is None or (stream, name) in declared, (service, stream, name)
    for spec in real:
        d = declared[(spec.stream, spec.durable)]
        for subject in spec.subjects:
            generic = subject.replace(f".{CLUSTER}.", ".*.")
            assert any(_matches(p, generic.replace("*", "x")) for p in d.subjects), (spec.durable, subject)


def test_every_service_has_a_role() -> None:
    services = {p.name for p in (REPO / "services").iterdir() if (p / "src").is_dir()}
    assert services == {r.service for r in ROLES}


def test_the_charts_authorization_file_is_not_stale() -> None:
    generated = REPO / "deploy" / "helm" / "opsbus" / "files" / "nats-authorization.conf"
    assert generated.read_text() == nats_conf(cluster="__CLUSTER__"), (  # the chart renders its clusterName
        "deploy/helm/opsbus/files/nats-authorization.conf is stale: regenerate it with `uv run python -m "
        "opsbus.common.bus.permissions --format nats-conf --cluster __CLUSTER__ > "
        "deploy/helm/opsbus/files/nats-authorization.conf`"
    )


# --- smoke: the six real service processes under the generated permissions ---------------------------------------

SMOKE_NOTIFIER = """
route:
  receiver: nowhere
receivers:
  - name: nowhere
    webhook_configs:
      - url: http://127.0.0.1:9/hook
"""


@pytest.mark.e2e
def test_the_real_services_start_and_answer_under_their_permissions(sandbox: Any, tmp_path: Path) -> None:
    """Every service process starts (streams, consumers, endpoints) as its own NATS user, and the gateway reaches
    the healer, notifier and optimizer over request-reply. The watcher and optimizer watch a namespace that does
    not exist, so nothing on the shared sandbox is touched."""
    from opsbus.demo.stack import Stack, StackOptions  # noqa: PLC0415 - the e2e tier's process runner

    notifier = tmp_path / "notifier.yaml"
    notifier.write_text(SMOKE_NOTIFIER)
    env = {s: {"OPSBUS_NATS__USER": user_name(s), "OPSBUS_NATS__PASSWORD": PASSWORDS[s]} for s in SERVICES}
    stack = Stack(
        StackOptions(
            kubeconfig=sandbox.kubeconfig,
            notifier_config=notifier,
            namespaces=[f"natsperm-absent-{new_event_id()[-8:]}"],
            service_env=env,
            jaeger=False,
        )
    )
    stack.nats.config = nats_conf(passwords=PASSWORDS)
    stack.start()
    try:
        headers = {"Authorization": f"Bearer {stack.admin_key}"}
        for path in ("/v1/recoveries/pending", "/v1/silences", "/v1/routes", "/v1/recommendations"):
            answer = httpx.get(stack.gateway_url + path, headers=headers, timeout=15.0)
            assert answer.status_code == 200, (path, answer.text)
        log = (stack.workdir / "nats.log").read_text()
        assert "Violation" not in log, log[-3000:]  # nats-server logs "Publish Violation", "Subscription Violation"
    finally:
        stack.stop()
