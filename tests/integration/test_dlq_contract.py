"""The DLQ contract of every durable consumer of every service, against a real nats-server (issue 28).

Each service exposes `consumer_specs(settings)` in its `service` module, the specs it registers on the bus.
For every one of them, with its real spec and a recording handler: events of the wrong type, of an unknown
version, of a type that does not belong on the subject, published on another namespace's subject, missing a
required CloudEvents attribute, with a bad `specversion`, with a bad payload, or not JSON at all, are each
copied to `dlq.<subject>` with a reason naming the fault, and the handler never sees them; a valid event
after them is handled (the consumer keeps going).

Parametrized from the services themselves, and guarded so that a consumer built outside `consumer_specs` (or a
durable declared in the NATS roles that `consumer_specs` does not return) fails here: a new consumer cannot be
added without being covered.

Then the defects of issue 28 once more against the real gateway, NATS and PostgreSQL: what it used to ack
(an alert without `specversion`, `alert.fired.v9`, a `deploy.requested` on an `alert.fired` subject, a
`recovery.approved` with a bad payload) is dead-lettered and never becomes an incident.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.bus.consuming import DLQ_CONSUMER, DLQ_REASON, DLQ_STREAM_SEQ
from opsbus.common.bus.permissions import SERVICES as SERVICE_ROLES
from opsbus.common.bus.permissions import role
from opsbus.common.events import Envelope, EventPayload, ObjectRef
from opsbus.common.events.examples import example_payloads
from opsbus.common.events.payloads import AlertFired, DeployRequested, RecoveryApproved
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration
MakeBus = Callable[..., Awaitable[Bus]]

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (REPO / "services").iterdir() if (p / "src").is_dir())
CLUSTER = "prod"
NAMESPACE = "contract"
REQUIRED = ("specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data")


def consumer_specs(service: str) -> list[ConsumerSpec]:
    """The specs `service` registers, built from its settings for cluster `prod`; none if it has no consumer
    (`test_consumers_are_built_only_by_consumer_specs` proves that is so)."""
    if importlib.util.find_spec(f"opsbus.{service}.service") is None:
        return []
    build = getattr(importlib.import_module(f"opsbus.{service}.service"), "consumer_specs", None)
    if build is None:
        return []
    settings_module = importlib.import_module(f"opsbus.{service}.settings")
    settings_class = getattr(settings_module, f"{service.title()}Settings")
    specs: list[ConsumerSpec] = build(settings_class.model_validate({"cluster": CLUSTER}))
    return specs


CONSUMERS = [pytest.param(spec, id=spec.durable) for service in SERVICES for spec in consumer_specs(service)]


# --- the guards: every consumer is in the registry -------------------------------------------------------------


def _calls_outside_consumer_specs(tree: ast.AST) -> list[int]:
    """Lines of `ConsumerSpec(...)` calls not inside `consumer_specs` or a function of the module it calls."""
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    builder = functions.get("consumer_specs")
    calls = ast.walk(builder) if builder else ()
    called = {c.func.id for c in calls if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    inside = {id(n) for name in ({"consumer_specs"} | called) & functions.keys() for n in ast.walk(functions[name])}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ConsumerSpec" and id(node) not in inside
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_consumers_are_built_only_by_consumer_specs(service: str) -> None:
    for path in (REPO / "services" / service / "src").rglob("*.py"):
        stray = _calls_outside_consumer_specs(ast.parse(path.read_text(), str(path)))
        assert not stray, f"{path.relative_to(REPO)}:{stray}: build ConsumerSpecs in `consumer_specs(settings)`"


@pytest.mark.parametrize("service", SERVICES)
def test_consumer_specs_return_every_durable_the_nats_roles_declare(service: str) -> None:
    declared = {(d.stream, d.on(CLUSTER).name) for d in (role(service).durables if service in SERVICE_ROLES else ())}
    assert {(s.stream, s.durable) for s in consumer_specs(service)} == declared


def test_the_contract_covers_consumers_of_every_consuming_service() -> None:
    consuming = {service for service in SERVICES if consumer_specs(service)}
    assert consuming >= {"gateway", "optimizer", "deployer", "notifier", "healer"}
    assert len(CONSUMERS) == sum(len(consumer_specs(service)) for service in SERVICES)


# --- the contract ---------------------------------------------------------------------------------------------


def _event(model: type[EventPayload], namespace: str = NAMESPACE) -> Envelope:
    return Envelope.build(
        example_payloads()[model.event_type],
        service="tests",
        cluster=CLUSTER,
        obj=ObjectRef(kind="Pod", namespace=namespace, name="contract-0"),
    )


def _edited(event: Envelope, **changes: Any) -> bytes:
    wire = json.loads(event.to_json())
    for key, value in changes.items():
        if value is None:
            del wire[key]
        else:
            wire[key] = value
    return json.dumps(wire).encode()


def bad_cases(valid: Envelope) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes published on `valid`'s subject, a fragment of the DLQ reason)."""
    family, verb = valid.family, valid.verb
    other_family = DeployRequested if family != "deploy" else AlertFired
    other_verb = "erased" if verb != "erased" else "cleared"
    misplaced = f"does not belong on subject {valid.nats_subject()}"
    cases = {
        "wrong-type": (_event(other_family).to_json(), misplaced),
        "type-not-matching-subject": (_edited(valid, type=f"io.opsbus.{family}.{other_verb}.v1"), misplaced),
        "envelope-of-another-namespace": (_event(type(valid.payload()), "elsewhere").to_json(), "belongs on"),
        "wrong-version": (_edited(valid, type=f"io.opsbus.{family}.{verb}.v9"), f"unknown version v9 of {family}"),
        "bad-specversion": (_edited(valid, specversion="0.3"), "specversion"),
        "bad-payload": (_edited(valid, data={"unexpected": True}), f"invalid {valid.type} payload"),
        "not-json": (b"{not json", "not a valid opsbus CloudEvent"),
    }
    for attribute in REQUIRED:
        cases[f"missing-{attribute}"] = (_edited(valid, **{attribute: None}), f"{attribute}: Field required")
    return cases


async def _dead_letters(bus: Bus, count: int, timeout: float = 15.0) -> list[dict[str, str]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await bus.js.stream_info("DLQ")
        if info.state.messages >= count or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1 if info.state.messages else 0):
        raw = await bus.js.get_msg("DLQ", seq)
        found.append({**(raw.headers or {}), "subject": raw.subject or ""})
    return found


@pytest.mark.parametrize("spec", CONSUMERS)
async def test_every_bad_event_is_dead_lettered_before_the_handler_and_the_consumer_keeps_going(
    spec: ConsumerSpec, make_bus: MakeBus
) -> None:
    assert spec.accepts, f"{spec.durable}: declare what it accepts"
    bus = await make_bus("contract")
    await bus.ensure_streams()
    handled: list[str] = []
    first = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        handled.append(delivery.event.id)
        first.set()

    bus.consumer(spec, handler)
    await bus.start()
    valid = _event(spec.accepts[0])
    subject = valid.nats_subject()
    cases = bad_cases(valid)
    published = {(await bus.js.publish(subject, raw)).seq: name for name, (raw, _) in cases.items()}
    await bus.publisher.publish(valid)

    await asyncio.wait_for(first.wait(), 15.0)
    dead = await _dead_letters(bus, len(cases))
    await asyncio.sleep(0.2)  # nothing else reaches the handler afterwards

    assert handled == [valid.id]
    reasons = {published[int(d[DLQ_STREAM_SEQ])]: d for d in dead}
    assert sorted(reasons) == sorted(cases)
    for name, (_, fragment) in cases.items():
        letter = reasons[name]
        assert letter["subject"] == f"dlq.{subject}"
        assert letter[DLQ_CONSUMER] == spec.durable
        assert fragment in letter[DLQ_REASON], (name, letter[DLQ_REASON])


# --- the defects of issue 28, against the real gateway ---------------------------------------------------------


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


async def test_the_gateway_dead_letters_what_it_used_to_ack_and_makes_no_incident_of_it(
    stack: GatewayStack, make_bus: MakeBus
) -> None:
    await stack.start()
    bus = await make_bus("tester")
    await bus.ensure_streams()
    alert = _event(AlertFired)
    alert_subject = alert.nats_subject()
    approved = _event(RecoveryApproved)
    sent = {
        (await bus.js.publish(alert_subject, _edited(alert, specversion=None))).seq: "no specversion",
        (await bus.js.publish(alert_subject, _edited(alert, type="io.opsbus.alert.fired.v9"))).seq: "v9",
        (await bus.js.publish(alert_subject, _event(DeployRequested).to_json())).seq: "deploy on alert",
    }
    bad_approval = await bus.js.publish(approved.nats_subject(), _edited(approved, data={"recovery_id": 7}))
    good = _event(AlertFired, "after")
    await bus.publisher.publish(good)

    admin = await stack.key("admin")
    async with stack.client(admin) as c:
        deadline = asyncio.get_running_loop().time() + 15.0
        while not (await c.get("/v1/incidents")).json()["items"]:
            assert asyncio.get_running_loop().time() < deadline, "the valid alert never became an incident"
            await asyncio.sleep(0.1)
        incidents = (await c.get("/v1/incidents")).json()["items"]
    assert len(incidents) == 1, incidents  # only the valid alert: none of the bad ones became an incident

    dead = [d for d in await _dead_letters(bus, 4) if d[DLQ_CONSUMER].startswith("gateway")]
    on_alerts = {sent[int(d[DLQ_STREAM_SEQ])]: d[DLQ_REASON] for d in dead if d["subject"] == f"dlq.{alert_subject}"}
    assert "specversion: Field required" in on_alerts["no specversion"]
    assert "unknown version v9 of alert.fired" in on_alerts["v9"]
    assert "does not belong on subject" in on_alerts["deploy on alert"]
    approvals = [d for d in dead if d["subject"] == f"dlq.{approved.nats_subject()}"]
    assert [int(d[DLQ_STREAM_SEQ]) for d in approvals] == [bad_approval.seq]
    assert "invalid io.opsbus.recovery.approved.v1 payload" in approvals[0][DLQ_REASON]
