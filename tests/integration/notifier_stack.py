"""The notifier's integration-test harness: a real HTTP receiver on 127.0.0.1 and the service run exactly as
`python -m opsbus.notifier run` runs it (runtime, setup, shutdown), against the test NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import select

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.notifier import store
from opsbus.notifier.domain.config import parse_config
from opsbus.notifier.executing import Notifier
from opsbus.notifier.service import setup
from opsbus.notifier.settings import NotifierSettings

MakeBus = Callable[..., Awaitable[Bus]]
SECRET = b"webhook-signing-key"


# --- a real HTTP receiver ---------------------------------------------------------------------------
@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """HTTP/1.1 on 127.0.0.1 (keep-alive): records every request, answers from `script` then `default`."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, dict[str, str]] = (200, {})
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    before_answer: Callable[[], Awaitable[None]] | None = None  # runs once a request is read, before the answer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                _, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(time.monotonic(), path, headers, body))
                if self.before_answer is not None:
                    await self.before_answer()
                status, extra = self.script.pop(0) if self.script else self.default
                head = f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nContent-Type: application/json\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(head.encode() + b"\r\n{}")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def webhook_receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    server = await asyncio.start_server(r._serve, "127.0.0.1", 0)
    r.port = server.sockets[0].getsockname()[1]
    yield r
    server.close()
    await server.wait_closed()


# --- the service ------------------------------------------------------------------------------------
def yaml_config(url: str, *, group_wait: str = "1s", group_interval: str = "1m", extra: str = "") -> str:
    return f"""
route:
  receiver: team
  group_by: [alertname, namespace]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: 4h
receivers:
  - name: team
    webhook_configs:
      - url: {url}
        secret: ${{HOOK_SECRET}}
{extra}
"""


@dataclass
class Stack:
    database_url: str
    nats_url: str
    running: list[tuple[Runtime[NotifierSettings], asyncio.Task[int]]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    async def start(self, yaml_text: str, **options: Any) -> Notifier:
        settings = NotifierSettings(
            environment="test",
            cluster="prod",
            instance=f"n{len(self.running)}",
            nats={"url": self.nats_url},
            database={"url": self.database_url, "pool_size": 4},
            http={"port": 0},
            shutdown_grace_seconds=5.0,
            notifier={
                "tick_seconds": 0.1,
                "backoff_base_seconds": 0.2,
                "gateway_url": "https://opsbus.example.com",
                "jaeger_url": "https://jaeger.example.com",
                **options,
            },
        )
        env = {"HOOK_SECRET": SECRET.decode(), **self.env}
        parse_config(yaml_text, env=env)  # a broken test configuration fails here, not in the service
        rt: Runtime[NotifierSettings] = Runtime("notifier", settings, registry=CollectorRegistry())
        made: asyncio.Future[Notifier] = asyncio.get_running_loop().create_future()

        async def wire(runtime: Runtime[NotifierSettings]) -> None:
            made.set_result(await setup(runtime, config_text=yaml_text, env=env))

        task = asyncio.create_task(rt.run(wire, install_signals=False), name=f"notifier-{settings.instance}")
        self.running.append((rt, task))
        waiting: list[asyncio.Future[Any]] = [made, task]
        done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if made not in done:
            raise RuntimeError(f"notifier did not start: {task.exception() if task.done() else 'timeout'}")
        return made.result()

    async def stop(self, index: int) -> None:
        rt, task = self.running[index]
        rt.request_shutdown()
        assert await task == 0

    async def stop_all(self) -> None:
        for index, (_, task) in enumerate(self.running):
            if not task.done():
                await self.stop(index)


async def notifier_stack(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), store.MIGRATIONS, store.SCHEMA)
    s = Stack(database_url, nats_url)
    yield s
    await s.stop_all()


async def notifier_db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(DatabaseSettings.model_validate({"url": database_url, "pool_size": 2}))
    yield database
    await database.close()


async def make_publisher(make_bus: MakeBus) -> Bus:
    bus = await make_bus("tester")
    await bus.ensure_streams()
    return bus


def alert_fired() -> Envelope:
    return example_events()[AlertFired.event_type]


def named_alert(name: str) -> Envelope:
    """The catalogue's alert as another alert (its own name and fingerprint, so its own group)."""
    base = alert_fired()
    data = {
        **base.data,
        "alertname": name,
        "fingerprint": hashlib.sha256(name.encode()).hexdigest()[:16],
        "labels": {**base.data["labels"], "alertname": name},
    }
    return base.model_copy(update={"id": str(uuid.uuid4()), "data": data})


async def statuses(db: Database) -> list[str]:
    """The status of every queued notification (pending, sending, delivered, dead)."""
    async with db.sessions() as session:
        return list((await session.execute(select(store.notifications.c.status))).scalars().all())


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def outbox_events(db: Database, event_type: str) -> list[dict[str, Any]]:
    t = store.TABLES.outbox
    async with db.sessions() as session:
        rows = (await session.execute(select(t.c.body).where(t.c.event_type == event_type).order_by(t.c.id))).all()
    return [json.loads(bytes(r.body)) for r in rows]


async def delivery_log(db: Database) -> list[Any]:
    t = store.delivery_log
    async with db.sessions() as session:
        return list((await session.execute(select(t).order_by(t.c.id))).all())
