"""The chat, SMS and Slack stand-ins (tests/integration/*_providers.py, slack_clicks.py) for the whole e2e session.

The notifier's configuration names the providers' addresses when the platform starts, once per session, so the
stand-ins must be up before it and stay up for every test. They run on an event loop of their own in a thread
(each test has its own loop); the tests read what they recorded (`hits`, `sent`, `messages`, `posts`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.integration.chat_providers import ChatProviders, chat_providers
from tests.integration.slack_clicks import SlackStandIn, slack_stand_in
from tests.integration.sms_providers import SmsProviders, sms_providers

T = TypeVar("T")


@dataclass
class StandIns:
    chat: ChatProviders
    sms: SmsProviders
    slack: SlackStandIn


class ProviderThread:
    """Starts the stand-ins on a loop in a daemon thread; `stop` shuts their servers down."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="e2e-providers", daemon=True)
        self._stack = contextlib.AsyncExitStack()

    def start(self) -> StandIns:
        self._thread.start()
        return self._run(self._enter())

    def stop(self) -> None:
        self._run(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    async def _enter(self) -> StandIns:
        enter = self._stack.enter_async_context
        chat = await enter(contextlib.asynccontextmanager(chat_providers)())
        sms = await enter(contextlib.asynccontextmanager(sms_providers)())
        slack = await enter(contextlib.asynccontextmanager(slack_stand_in)())
        return StandIns(chat=chat, sms=sms, slack=slack)
