"""The analyzer service against a real NATS and PostgreSQL: a change then an alert give `diagnosis.made` on the
bus with the change as top cause within 2 s, in the incident's chain; a late change that explains the incident
better gives `diagnosis.revised`; an alert nothing explains is `unknown`; bad input goes to the DLQ with a reason
and the analyzer keeps serving; a redelivered alert publishes nothing twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import select

from opsbus.analyzer import store
from opsbus.common.bus import Bus
from opsbus.common.bus.consuming import DLQ_REASON
from opsbus.common.events.payloads import ChangeKind, DiagnosisMade, DiagnosisRevised
from opsbus.common.events.payloads.diagnosis import CauseKind, DiagnosisOutcome, EvidenceKind
from tests.integration.analyzer_stack import (
    CLUSTER,
    NS,
    AnalyzerStack,
    alert_event,
    bus,
    change_event,
    last_event,
    stack,
    wait_recorded,
)

pytestmark = pytest.mark.integration
__all__ = ["bus", "stack"]  # fixtures shared through analyzer_stack


async def test_change_then_alert_gives_the_rollout_as_top_cause_within_2s(stack: AnalyzerStack, bus: Bus) -> None:
    await stack.start()
    now = datetime.now(UTC)
    change = change_event(now - timedelta(seconds=40))
    distractor = change_event(now - timedelta(seconds=5), name="cart", image="shop/cart:9")
    await bus.publisher.publish(change)
    await bus.publisher.publish(distractor)
    await wait_recorded(stack, change, distractor)  # a real watcher publishes changes before their faults, too
    alert = alert_event(now)
    sent = asyncio.get_running_loop().time()
    await bus.publisher.publish(alert)
    made = await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")
    latency = asyncio.get_running_loop().time() - sent
    assert latency < 2.0, latency
    d = made.payload_as(DiagnosisMade)
    assert made.correlationid == alert.id and made.causationid == alert.id
    assert made.subject == f"Deployment/{NS}/web"
    assert d.incident.incident_id == alert.id and d.outcome is DiagnosisOutcome.EXPLAINED
    top = d.causes[0]
    assert (top.kind, top.suggested_action.value) == (CauseKind.ROLLOUT, "rollback")
    assert top.evidence[0].kind is EvidenceKind.CHANGE and top.evidence[0].ref == change.id
    assert all(c.evidence[0].ref != distractor.id for c in d.causes)
    assert {c.source for c in d.checked} >= {"changes", "logs", "alerts"}


async def test_a_late_change_that_explains_better_revises_the_diagnosis(stack: AnalyzerStack, bus: Bus) -> None:
    await stack.start()
    now = datetime.now(UTC)
    old = change_event(now - timedelta(minutes=20))  # an old image change: weak
    await bus.publisher.publish(old)
    await wait_recorded(stack, old)
    alert = alert_event(now, reason="CrashLoopBackOff")
    await bus.publisher.publish(alert)
    made = (await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")).payload_as(DiagnosisMade)
    assert made.causes[0].kind is CauseKind.ROLLOUT
    # the watcher's record of an env change 30 s before the crash arrives after the alert
    env = change_event(now - timedelta(seconds=30), kinds=(ChangeKind.ENV,))
    await bus.publisher.publish(env)
    revised_event = await last_event(bus, "DIAGNOSIS", f"diagnosis.revised.{CLUSTER}.{NS}")
    revised = revised_event.payload_as(DiagnosisRevised)
    assert revised.revision == 2 and revised.causes[0].evidence[0].ref == env.id
    assert revised_event.correlationid == alert.id and revised_event.causationid == env.id
    assert revised.previous_top is CauseKind.ROLLOUT and env.id in revised.reason
    # a second alert of the same workload joins the incident; the ranking is the same: no new revision
    await bus.publisher.publish(alert_event(now, pod="web-7d9f-b2", reason="CrashLoopBackOff", fingerprint="f" * 16))
    await asyncio.sleep(0.5)
    again = await last_event(bus, "DIAGNOSIS", f"diagnosis.revised.{CLUSTER}.{NS}")
    assert again.id == revised_event.id
    async with stack_db(stack) as rows:
        (row,) = rows
        alerts = row["alerts"]
        assert isinstance(alerts, list)
        assert (row["id"], row["revision"], len(alerts)) == (alert.id, 2, 2)


async def test_nothing_explains_it_is_unknown(stack: AnalyzerStack, bus: Bus) -> None:
    await stack.start()
    unrelated = change_event(datetime.now(UTC), name="cart", image="shop/cart:9")
    await bus.publisher.publish(unrelated)
    await wait_recorded(stack, unrelated)
    await bus.publisher.publish(alert_event(datetime.now(UTC), reason="CrashLoopBackOff"))
    made = (await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")).payload_as(DiagnosisMade)
    assert made.outcome is DiagnosisOutcome.UNKNOWN and made.causes == ()
    checked = {c.source: c.count for c in made.checked}
    assert checked["changes"] == 1 and checked["alerts"] == 1


async def test_bad_input_goes_to_the_dlq_and_the_analyzer_keeps_serving(stack: AnalyzerStack, bus: Bus) -> None:
    await stack.start()
    now = datetime.now(UTC)
    good = change_event(now)
    broken = good.model_copy(update={"id": "broken-change-1", "data": {**good.data, "kinds": []}})
    subject = f"change.recorded.{CLUSTER}.{NS}"
    await bus.publisher.publish(broken)
    dead = await bus.js.get_last_msg("DLQ", f"dlq.{subject}") if await _wait_dlq(bus, subject) else None
    assert dead is not None and dead.headers is not None
    assert "kinds" in dead.headers[DLQ_REASON]
    await bus.publisher.send_raw(f"alert.fired.{CLUSTER}.{NS}", b"{not json", {"Nats-Msg-Id": "garbage-1"})
    assert await _wait_dlq(bus, f"alert.fired.{CLUSTER}.{NS}")
    alert = alert_event(now + timedelta(seconds=1))
    await bus.publisher.publish(alert)
    made = await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")
    assert made.correlationid == alert.id


async def test_a_redelivered_alert_publishes_nothing_twice(stack: AnalyzerStack, bus: Bus) -> None:
    analyzer = await stack.start()
    alert = alert_event(datetime.now(UTC))
    await bus.publisher.publish(alert)
    made = await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")
    from opsbus.common.bus import Delivery  # noqa: PLC0415

    await analyzer.on_alert(Delivery(event=alert, subject=alert.nats_subject(), stream_sequence=1, attempt=2))
    info = await bus.js.stream_info("DIAGNOSIS")
    assert info.state.messages == 1
    assert (await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")).id == made.id


async def _wait_dlq(bus: Bus, subject: str) -> bool:
    for _ in range(100):
        try:
            await bus.js.get_last_msg("DLQ", f"dlq.{subject}")
            return True
        except NotFoundError:
            await asyncio.sleep(0.05)
    return False


class stack_db:
    """The analyzer's incident rows, read straight from its schema."""

    def __init__(self, stack: AnalyzerStack) -> None:
        self.stack = stack

    async def __aenter__(self) -> list[dict[str, object]]:
        from opsbus.common.settings import DatabaseSettings  # noqa: PLC0415
        from opsbus.common.store import Database  # noqa: PLC0415

        self.db = Database.from_settings(DatabaseSettings.model_validate({"url": self.stack.database_url}))
        async with self.db.sessions() as s:
            return [dict(r) for r in (await s.execute(select(store.incidents))).mappings()]

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()


async def test_the_analyzer_migrations_build_what_its_models_describe(stack: AnalyzerStack) -> None:
    """Autogenerate finds nothing to do at head, and downgrade to base then upgrade again works."""
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from sqlalchemy.engine import Connection  # noqa: PLC0415

    from opsbus.common.settings import DatabaseSettings  # noqa: PLC0415
    from opsbus.common.store import Database, downgrade, upgrade  # noqa: PLC0415

    settings = DatabaseSettings.model_validate({"url": stack.database_url})
    await downgrade(settings, store.MIGRATIONS, store.SCHEMA, "base")
    await upgrade(settings, store.MIGRATIONS, store.SCHEMA)

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, parents: name == store.SCHEMA if type_ == "schema" else True,
                "version_table_schema": store.SCHEMA,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, store.metadata))

    db = Database.from_settings(settings)
    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.close()


async def test_the_gateway_incident_view_shows_the_diagnosis(
    stack: AnalyzerStack, bus: Bus, database_url: str, nats_url: str
) -> None:
    """change.recorded then alert.fired: the gateway's GET /v1/incidents/{id} carries the analyzer's top cause."""
    from tests.integration.gateway_stack import gateway_stack  # noqa: PLC0415

    async for gw in gateway_stack(database_url, nats_url):
        await gw.start()
        await stack.start()
        now = datetime.now(UTC)
        change = change_event(now - timedelta(seconds=40))
        await bus.publisher.publish(change)
        await wait_recorded(stack, change)
        alert = alert_event(now)
        await bus.publisher.publish(alert)
        async with gw.client(await gw.key("viewer")) as c:
            body: dict[str, object] = {}
            for _ in range(100):
                r = await c.get(f"/v1/incidents/{alert.id}")
                body = r.json()
                if r.status_code == 200 and body.get("diagnosis"):
                    break
                await asyncio.sleep(0.05)
        diagnosis = body["diagnosis"]
        assert isinstance(diagnosis, dict), body
        assert diagnosis["type"] == "io.opsbus.diagnosis.made.v1"
        top = diagnosis["data"]["causes"][0]
        assert (top["kind"], top["suggested_action"]) == ("rollout", "rollback")
        assert top["evidence"][0] == {
            "kind": "change",
            "ref": change.id,
            "detail": "image app: web:1.41 -> shop/web:1.42",
            "at": top["evidence"][0]["at"],
        }


async def test_opsbus_why_prints_the_top_cause_and_its_evidence(
    stack: AnalyzerStack, bus: Bus, database_url: str, nats_url: str
) -> None:
    """The CLI against the real gateway: `opsbus why ID` and the cause column of `opsbus incidents`."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from opsbus.cli.main import app  # noqa: PLC0415
    from tests.integration.gateway_stack import gateway_stack  # noqa: PLC0415

    async for gw in gateway_stack(database_url, nats_url):
        await gw.start()
        await stack.start()
        now = datetime.now(UTC)
        change = change_event(now - timedelta(seconds=40))
        await bus.publisher.publish(change)
        await wait_recorded(stack, change)
        alert = alert_event(now)
        await bus.publisher.publish(alert)
        env = {"OPSBUS_URL": gw.url, "OPSBUS_API_KEY": await gw.key("viewer"), "COLUMNS": "250"}

        def opsbus(*args: str, env: dict[str, str] = env) -> tuple[int, str]:
            result = CliRunner().invoke(app, list(args), env=env)
            return result.exit_code, result.output

        for _ in range(100):
            code, text = await asyncio.to_thread(opsbus, "why", alert.id)
            if "rollout" in text:
                break
            await asyncio.sleep(0.05)
        assert code == 0, text
        assert "KubePodImagePullFailing on Pod/shop/web-7d9f-a1" in text
        assert "rollout" in text and "rollback" in text and "image pulls fail since the image changed" in text
        assert change.id in text and "ImagePullBackOff" in text
        assert "checked: changes 1" in text
        code, listing = await asyncio.to_thread(opsbus, "incidents")
        assert code == 0 and "rollout 0." in listing
        code, missing = await asyncio.to_thread(opsbus, "why", "no-such-incident")
        assert code == 1 and "no incident" in missing
