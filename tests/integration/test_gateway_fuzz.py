"""Schemathesis fuzzing of the gateway from its own OpenAPI document (bounded), against the real gateway on real
NATS and PostgreSQL, as an admin and as a namespace-scoped operator: the per-operation phase (valid and invalid
requests to each operation) and the stateful phase (sequences chained through the links schemathesis infers:
create a key then revoke it, create a silence then expire it, request a deployment then read it). No answer may
be a 5xx other than 503 (the healer, deployer and notifier are deliberately not running, so their endpoints
answer 503 with Retry-After), and every documented response must match its schema."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

EXAMPLES = 6  # per operation and generation mode, as an admin
SCOPED_EXAMPLES = 3  # the scoped key mostly meets 403s: fewer are enough to show they conform
STATEFUL_SCENARIOS = 12  # per key, each of up to 6 chained calls
SKIP = {  # endless by design: covered by test_gateway_stream_auth and the console's browser tests
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/live"),
}


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def fuzz(base_url: str, spec: dict[str, Any], token: str, examples: int = EXAMPLES) -> dict[str, int]:
    schema = schemathesis.openapi.from_dict(spec)
    seen: dict[str, int] = {}
    failures: list[str] = []
    timings: dict[str, float] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation raises here, failing the test
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            began = time.monotonic()

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                try:
                    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                except Exception as exc:
                    failures.append(f"{case.method} {case.path}: {type(exc).__name__}: {exc}"[:400])
                    return
                status = response.status_code
                seen[str(status)] = seen.get(str(status), 0) + 1
                if status >= 500 and status != 503:
                    failures.append(f"{case.method} {case.path} -> {status}: {response.text[:300]}")
                    return
                try:
                    case.validate_response(response, checks=[response_schema_conformance])
                except Exception as exc:
                    failures.append(f"{case.method} {case.path} -> {status}: {str(exc)[:300]}")

            try:
                run()
            except Unsatisfiable:
                continue  # nothing invalid can be generated (no parameters): nothing to fuzz
            except Exception as exc:
                inner = getattr(exc, "exceptions", None) or [exc]
                failures.append(f"{operation.method} {operation.path} ({mode.value}): {exc!r}: {inner[0]!r}"[:2000])
            timings[f"{operation.method} {operation.path} {mode.value}"] = time.monotonic() - began
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:5]
    print("slowest operations:", ", ".join(f"{k} {v:.1f}s" for k, v in slowest))
    assert not failures, "\n".join(failures[:20])
    return seen


def stateful(base_url: str, spec: dict[str, Any], token: str) -> dict[str, int]:
    """The stateful phase: scenarios of a few chained calls; the same verdict on every response."""
    schema = schemathesis.openapi.from_dict(spec)
    seen: dict[str, int] = {}
    failures: list[str] = []
    machine = schema.as_state_machine()
    links = [name for name in dir(machine) if "__" in name and not name.startswith(("_", "RANDOM"))]
    assert links, "schemathesis inferred no links between operations: the stateful phase would test nothing"

    class Scenario(machine):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url, "headers": {"Authorization": f"Bearer {token}"}, "timeout": 10}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            status = response.status_code
            seen[str(status)] = seen.get(str(status), 0) + 1
            if status >= 500 and status != 503:
                failures.append(f"{case.method} {case.path} -> {status}: {response.text[:300]}")
                return
            try:
                case.validate_response(response, checks=[response_schema_conformance])
            except Exception as exc:
                failures.append(f"{case.method} {case.path} -> {status}: {str(exc)[:300]}")

    Scenario.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert not failures, "\n".join(failures[:20])
    return seen


# schemathesis's own generators use `random` inside strategies (a Hypothesis deprecation, not our code)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.timeout(1200)  # bounded by the examples per operation; on a loaded machine it takes minutes
async def test_gateway_answers_fuzzed_requests_and_sequences_without_5xx(stack: GatewayStack) -> None:
    await stack.start(rate_per_second=100000.0, rate_burst=100000, rpc_timeout_seconds=0.2)
    admin = await stack.key("admin")
    scoped = await stack.key("operator", namespaces=["payments"])
    async with httpx.AsyncClient(base_url=stack.url) as c:
        spec = (await c.get("/v1/openapi.json")).json()
    for label, run in (
        ("admin, per operation", lambda: fuzz(stack.url, spec, admin)),
        ("scoped operator, per operation", lambda: fuzz(stack.url, spec, scoped, SCOPED_EXAMPLES)),
        ("admin, stateful", lambda: stateful(stack.url, spec, admin)),
        ("scoped operator, stateful", lambda: stateful(stack.url, spec, scoped)),
    ):
        started = time.monotonic()
        seen = await asyncio.to_thread(run)
        print(
            f"{label}: {sum(seen.values())} requests in {time.monotonic() - started:.1f}s: {dict(sorted(seen.items()))}"
        )
        assert sum(seen.values()) > 50, label
