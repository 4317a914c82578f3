"""A small, real Prometheus HTTP API server for tests: `/api/v1/query_range` over series the test defines.

It answers the two queries `PrometheusUsage` sends (cAdvisor CPU rate and working set), honouring the
namespace matcher, start, end and step, in Prometheus's exact JSON shape. Bound to 127.0.0.1 on a free
port. Production code never imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# (namespace, pod, container, t) -> (cpu cores, memory bytes); None: no sample at t
UsageFn = Callable[[str, str, str, float], tuple[float, float] | None]


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class FakePrometheus:
    usage: UsageFn
    series: Callable[[], list[tuple[str, str, str]]]  # (namespace, pod, container) that exist
    fail: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def query_range(request: Request) -> Response:
            params = dict(request.query_params)
            self.requests.append(params)
            if self.fail:
                return JSONResponse({"status": "error", "errorType": "internal", "error": "injected"}, status_code=500)
            query = params["query"]
            start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
            match = re.search(r'namespace=~"([^"]*)"', query)
            allowed = set(match.group(1).split("|")) if match else None
            cpu = "container_cpu_usage_seconds_total" in query
            result = []
            for ns, pod, container in self.series():
                if allowed is not None and ns not in allowed:
                    continue
                values = []
                t = start
                while t <= end + 1e-9:
                    sample = self.usage(ns, pod, container, t)
                    if sample is not None:
                        values.append([round(t, 3), repr(sample[0] if cpu else sample[1])])
                    t += step
                if values:
                    metric = {"namespace": ns, "pod": pod, "container": container}
                    result.append({"metric": metric, "values": values})
            return JSONResponse({"status": "success", "data": {"resultType": "matrix", "result": result}})

        return Starlette(routes=[Route("/api/v1/query_range", query_range)])

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakePrometheus]:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off")
        server = _Quiet(config)
        task = asyncio.create_task(server.serve(), name="fake-prometheus")
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        port = next(s.getsockname()[1] for srv in server.servers for s in srv.sockets)
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.should_exit = True
            await task
