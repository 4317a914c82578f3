"""What the console's browser tests stand on: the real gateway (tests/integration/gateway_stack.py) on real NATS
and PostgreSQL serving the built console, Debian's Chromium driven by Playwright (never a downloaded browser),
alerts published on the bus as the watcher would, and a stand-in for the healer's approval endpoints on the
real bus (the healer itself needs the sandbox cluster; tests/integration/test_gateway_approvals.py shows the
real healer carrying an approval out)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from nats.aio.client import Client
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from playwright.async_api import BrowserContext, Page, async_playwright

from opsbus.common.api import healer as api
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.common.events.payloads.recovery import ActionKind, RecoveryAction
from opsbus.common.rpc import Endpoint, serve
from opsbus.gateway.console_assets import PACKAGED

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "console-incident.png"  # tests/e2e writes it
LIVE_BUDGET_MS = 1000.0  # alert.fired -> row on screen, p95

FOCUSED_TEXT = (
    "() => { const e = document.activeElement; return (e?.innerText || e?.getAttribute('aria-label') || '').trim() }"
)


def require_console() -> None:
    if not (PACKAGED / "index.html").is_file():
        raise AssertionError("the console is not built: run `make console`")


async def chromium(profile: Path, locale: str = "en-US") -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile per test, Debian's binary, its language `locale`."""
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is not installed: run `make setup` (tools/install.d/50-chromium.sh)"
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=binary, headless=True, args=CHROMIUM_ARGS, locale=locale
        )
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile per test (import it into the test module to use it)."""
    async for context in chromium(tmp_path / "profile"):
        yield context


def crash_alert(namespace: str, pod: str, severity: Severity = Severity.CRITICAL) -> Envelope:
    labels = {"alertname": "KubePodCrashLooping", "namespace": namespace, "pod": pod, "severity": severity.value}
    alert = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubePodCrashLooping",
        severity=severity,
        labels=labels,
        annotations=AlertAnnotations(summary=f"pod {pod} is crash-looping"),
        starts_at=datetime.now(UTC) - timedelta(seconds=30),
        source=AlertSource.WATCHER,
    )
    return Envelope.build(
        alert, service="watcher", cluster="prod", obj=ObjectRef(kind="Pod", namespace=namespace, name=pod)
    )


def detection_span(trace_id: int) -> AbstractContextManager[Any]:
    """The watcher's detection span, made current: what is published inside it carries this trace id."""
    detected = SpanContext(trace_id, 0x00F067AA0BA902B7, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.use_span(NonRecordingSpan(detected))


@dataclass
class HealerStandIn:
    """Answers the gateway's approval calls like the healer: a pending list and the decisions it received."""

    pending: list[api.PendingApproval] = field(default_factory=list)
    decisions: list[tuple[str, api.ApproveRequest | api.RejectRequest]] = field(default_factory=list)

    def add(self, namespace: str, pod: str) -> api.PendingApproval:
        now = datetime.now(UTC)
        item = api.PendingApproval(
            recovery_id=str(uuid.uuid4()),
            step=1,
            action=RecoveryAction(
                kind=ActionKind.DELETE_POD,
                target=ResourceRef(kind="Pod", namespace=namespace, name=pod),
                disruptive=True,
            ),
            reason="delete_pod requires approval by policy careful-crashloop",
            requested_at=now,
            expires_at=now + timedelta(minutes=10),
        )
        self.pending.append(item)
        return item

    async def serve(self, nc: Client) -> Any:
        async def list_pending(_: api.ListPendingRequest) -> api.PendingList:
            return api.PendingList(items=self.pending)

        async def approve(request: api.ApproveRequest) -> api.ApprovalAnswer:
            self.decisions.append(("approve", request))
            self.pending = [p for p in self.pending if p.recovery_id != request.recovery_id]
            return api.ApprovalAnswer(recovery_id=request.recovery_id, step=request.step, status="approved")

        async def reject(request: api.RejectRequest) -> api.ApprovalAnswer:
            self.decisions.append(("reject", request))
            self.pending = [p for p in self.pending if p.recovery_id != request.recovery_id]
            return api.ApprovalAnswer(recovery_id=request.recovery_id, step=request.step, status="rejected")

        return await serve(
            nc,
            api.SERVICE,
            "0.0.0",
            [
                Endpoint("list_pending", api.ListPendingRequest, api.PendingList, list_pending),
                Endpoint("approve", api.ApproveRequest, api.ApprovalAnswer, approve),
                Endpoint("reject", api.RejectRequest, api.ApprovalAnswer, reject),
            ],
        )


async def sign_in(page: Page, base: str, token: str) -> None:
    """Sign in with the keyboard only: the key field has focus after one Tab from the skip link order."""
    await page.goto(f"{base}/signin")
    await page.get_by_label("API key").focus()
    await page.keyboard.type(token)
    await page.keyboard.press("Enter")
    await page.get_by_role("navigation").wait_for()


async def sso_sign_in(page: Page, base: str, issuer: str, login: str, next_path: str = "/incidents") -> None:
    """Sign in with SSO as a person does: `next_path` sends the signed-out browser to the sign-in page (axe-core
    checks it), "Sign in with SSO" by keyboard, the provider's login and consent forms (any password for a known
    login), and back on `next_path`, signed in."""
    await page.goto(f"{base}{next_path}")
    await page.wait_for_url("**/signin?next=*")
    await page.get_by_role("link", name="Sign in with SSO").wait_for()
    await no_serious_violations(page, "sign-in with SSO")
    await tab_to(page, "Sign in with SSO")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{issuer}/**")  # the provider's login form
    await page.locator('input[name="login"]').fill(login)
    await page.locator('input[name="password"]').fill("anything")
    await page.get_by_role("button", name="Sign-in").click()
    await page.get_by_role("button", name="Continue").click()  # the provider's consent
    await page.wait_for_url(f"{base}{next_path}")
    await page.get_by_role("navigation").wait_for()


async def tab_to(page: Page, name: str, limit: int = 40) -> None:
    """Press Tab until the focused element's accessible text is `name` (keyboard-only navigation)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        text = await page.evaluate(FOCUSED_TEXT)
        if text == name:
            return
    raise AssertionError(f"{name!r} not reachable with Tab")


async def no_serious_violations(page: Page, where: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{where}: " + "; ".join(
        f"{v['id']}: {v['help']} {[(n['target'], n.get('failureSummary', '')[:200]) for n in v['nodes']]}" for v in bad
    )


async def both_languages(page: Page, where: str) -> None:
    """axe-core on the page in English, then in Chinese (the language switch), and back to English."""
    await no_serious_violations(page, f"{where} (en)")
    await page.get_by_label("Language").select_option("zh-CN")
    await no_serious_violations(page, f"{where} (zh-CN)")
    await page.get_by_label("语言").select_option("en")
