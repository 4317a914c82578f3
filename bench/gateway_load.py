"""Requests per second and latency of the gateway under 64 concurrent clients, against a bare FastAPI app on
the same uvicorn measured in the same run (these machines are shared and noisy: the ratio is what means
something), and against StackStorm's API (about 20 requests/s per worker, the issue's anchor).

Every party is its own process: nats-server and PostgreSQL (private, temporary), the real gateway
(`python -m opsbus.gateway run`, one process = one worker, its consumers and outbox relay running), the bare
FastAPI app (`--bare`, one uvicorn worker; both on uvloop and httptools), and the load generator, `wrk` (C,
keep-alive, 64 connections; `apt-get install wrk`, or tools/install-deps.sh).
Measured, in rounds that alternate the targets:

* bare GET   - `GET /ok` returning a small JSON object (FastAPI + uvicorn, nothing else)
* bare POST  - `POST /deploy` parsing the same JSON body into a pydantic model, answering 202
* whoami     - `GET /v1/whoami`: authentication (API key, cached), rate limit check, middleware, problem+json
* audit      - `GET /v1/audit?limit=20`: the same plus a PostgreSQL query, 1,000,000 audit rows present
  (`--audit-rows`; made like bench/audit_pages.py's)
* deploy     - `POST /v1/deployments`: validation, authorization, one transaction writing the deploy request,
  its `deploy.requested` event and the audit entry to the outbox (published to JetStream by the relay)

The gateway's per-key rate limit is raised out of the way (its check still runs on every request).

"Per CPU-second" (issue 23's measure) is the CPU time (user + system, from /proc) of the serving process alone:
the gateway's one process, with what it does after answering (the outbox relay's publish, the audit consumer)
charged to the target that caused it, against the bare app's process. PostgreSQL's CPU (its postmaster and
backends) is measured over the same window and reported apart, per request: a statement the database does more
of (building the audit page's JSON) shows there, not hidden. wrk's and nats-server's CPU are not counted.

    uv run --frozen --all-packages python bench/gateway_load.py [--seconds 5] [--rounds 3] [--connections 64]

`--profile whoami|audit|deploy` measures nothing: it samples the gateway with py-spy (a dev dependency) while wrk
loads that one target, keeps the collapsed stacks (`--profile-out`, for a flame graph) and prints the functions
with the most samples, inclusive and own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

STACKSTORM_RPS_PER_WORKER = 20.0
DEPLOY_BODY = {
    "workload": {"kind": "Deployment", "namespace": "payments", "name": "checkout"},
    "strategy": "rolling",
    "images": {"app": "registry.example.com/payments/checkout:1.43.0"},
    "reason": "load test",
}
PROFILED = {
    "whoami": "gateway GET /v1/whoami",
    "audit": "gateway GET /v1/audit?limit=20",
    "deploy": "gateway POST /v1/deployments",
}


# --- the bare baseline (run with --bare PORT in its own process) -----------------------------------------
class Workload(BaseModel):
    kind: str
    namespace: str
    name: str


class Deploy(BaseModel):
    workload: Workload
    strategy: str
    images: dict[str, str] = Field(default_factory=dict)
    reason: str | None = None


def serve_bare(port: int) -> None:
    import uvicorn  # noqa: PLC0415
    from fastapi import FastAPI  # noqa: PLC0415

    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok", "service": "bare"}

    @app.post("/deploy", status_code=202)
    async def deploy(body: Deploy) -> dict[str, str]:
        return {"request_id": "r-1", "workload": body.workload.name}

    # the same server stack as the gateway (uvloop, httptools), named so the baseline cannot silently differ
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        loop="uvloop",
        http="httptools",
    )


# --- wrk ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    raw: str = ""
    cpu_ms_per_request: float = 0.0  # CPU time of the serving process (user + system) per answered request
    pg_cpu_ms_per_request: float = 0.0  # PostgreSQL's CPU per answered request (all its processes), reported apart


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Result(rps, p50, p99, errors, requests, output)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of the process `pid` and its children: PostgreSQL's postmaster, its live backends and (in the
    postmaster's `cutime`/`cstime`) the backends that exited."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            child = stat.read_text().rsplit(")", 1)[1].split()
            if int(child[1]) == pid:
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(pid: int, *, idle_share: float = 0.03, window: float = 0.5, timeout: float = 120.0) -> None:
    """Wait until the process `pid` uses less than `idle_share` of a CPU over `window` seconds: the gateway's
    outbox relay and audit consumer work through what the previous requests queued, after they were answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < idle_share * window:
            return


def measure(pid: int, url: str, *, pg_pid: int, **kwargs: Any) -> Result:
    """wrk against `url`, with the CPU time the serving process `pid` spent on it (robust to a busy machine), and
    apart from it PostgreSQL's (`pg_pid`, the postmaster, and its backends).

    The process is idle when wrk starts, and the CPU it spends after wrk ends until it is idle again counts too:
    a deploy request's relay publish and the audit entry's consumption are part of its cost, and must not be
    charged to the next target measured (as they were before 2026-12-07)."""
    settle(pid)
    before, pg_before = cpu_seconds(pid), tree_cpu_seconds(pg_pid)
    result = wrk(url, **kwargs)
    settle(pid)
    used, pg_used = cpu_seconds(pid) - before, tree_cpu_seconds(pg_pid) - pg_before
    answered = max(1, result.requests - result.errors)
    return dataclasses.replace(
        result, cpu_ms_per_request=used * 1000 / answered, pg_cpu_ms_per_request=pg_used * 1000 / answered
    )


def wrk(url: str, *, seconds: float, connections: int, headers: dict[str, str], body: Any, tmp: Path) -> Result:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if body is not None:
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        args += ["-s", str(script)]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


# --- the stack ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{what} did not answer at {url} (exit code {proc.poll()}); its log ends:\n{tail}")


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def prepare(database_url: str, rows: int) -> str:
    """Migrate the gateway's schema, create an admin key, seed audit rows; return the key."""
    from opsbus.common.settings import DatabaseSettings  # noqa: PLC0415
    from opsbus.common.store import Database, upgrade  # noqa: PLC0415
    from opsbus.gateway import store  # noqa: PLC0415
    from opsbus.gateway.domain.access import ALL, Role  # noqa: PLC0415
    from opsbus.gateway.keystore import KeyStore  # noqa: PLC0415

    settings = DatabaseSettings.model_validate({"url": database_url})
    await upgrade(settings, store.MIGRATIONS, store.SCHEMA)
    db = Database.from_settings(settings)
    try:
        _, token = await KeyStore(db).create(
            name="bench", role=Role.ADMIN, namespaces=[ALL], clusters=[ALL], created_by="bench"
        )
        await seed_audit(db, rows)
    finally:
        await db.close()
    return token


INDEXES = """
SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'gateway' AND tablename = 'audit_entries'
    AND indexname LIKE 'ix_%'
"""
SEED = """
INSERT INTO gateway.audit_entries (event_id, time, service, cluster, namespace, actor_kind, actor_id, action,
    target_kind, target_name, outcome, reason, details, request_id, correlation_id, dry_run)
SELECT 'bench-' || i,
    now() - ((:rows - i) * (400 * 86400.0 / :rows)) * interval '1 second',
    (ARRAY['healer','deployer','optimizer','gateway'])[1 + i % 4],
    (ARRAY['prod','prod','edge'])[1 + i % 3],
    'ns-' || (i * 7 % 50),
    CASE WHEN i % 4 = 3 THEN 'user' ELSE 'service' END,
    'user-' || (i * 13 % 200),
    (ARRAY['recovery.delete_pod','recovery.rollout_restart','recovery.rollback','deploy.request','deploy.abort',
           'deploy.promote','recommendation.apply','apikey.create','apikey.revoke','console.signin',
           'policy.put','silence.create'])[1 + i * 5 % 12],
    'Deployment', 'web-' || (i * 31 % 20000),
    (ARRAY['executed','executed','executed','skipped','dry_run','denied','failed'])[1 + i * 3 % 7],
    'bench entry ' || i, jsonb_build_object('step', i % 5), 'req-' || i, 'corr-' || (i / 4), false
FROM generate_series(1, :rows) AS i
"""


async def seed_audit(db: Any, rows: int) -> None:
    """`rows` audit entries in one `INSERT ... SELECT generate_series`, the indexes built once after the load
    (not kept up row by row), then `VACUUM ANALYZE`: a million rows in about a minute."""
    from sqlalchemy import text  # noqa: PLC0415

    started = time.monotonic()
    async with db.engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        indexes = (await conn.execute(text(INDEXES))).all()
        for name, _ in indexes:
            await conn.execute(text(f"DROP INDEX gateway.{name}"))
        await conn.execute(text(SEED), {"rows": rows})
        for _, definition in indexes:
            await conn.execute(text(definition))
    async with db.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE gateway.audit_entries"))
    print(f"seeded {rows:,} audit rows in {time.monotonic() - started:.0f} s", file=sys.stderr)


def profile(pid: int, url: str, out: Path, *, seconds: int, **kwargs: Any) -> None:
    """py-spy samples of the process `pid` while wrk loads `url`: collapsed stacks in `out`, a table printed."""
    settle(pid)  # nothing left over from the warm-ups (the relay publishing their deploy requests)
    spy = subprocess.Popen(
        [
            *("py-spy", "record", "--pid", str(pid), "--rate", "250", "--duration", str(seconds), "--nonblocking"),
            *("--format", "raw", "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wrk(url, seconds=seconds + 1, **kwargs)
    _, err = spy.communicate(timeout=120)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')}")
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f]
        frames = [re.sub(r"\(.*/(site-packages|src)/", "(", f) for f in frames]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    print(f"\n{total} samples of {url} (collapsed stacks: {out})")
    for title, counts in (("inclusive", inclusive), ("own", own)):
        print(f"\n| {title} % | function (module) |\n|---|---|")
        for frame, n in sorted(counts.items(), key=lambda kv: -kv[1])[:30]:
            print(f"| {100 * n / max(1, total):.1f} | {frame} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets; the median is reported")
    parser.add_argument("--connections", type=int, default=64, help="concurrent keep-alive connections")
    parser.add_argument("--audit-rows", type=int, default=1_000_000, help="audit entries in PostgreSQL")
    parser.add_argument("--profile", choices=["whoami", "audit", "deploy"], help="sample this target, measure none")
    parser.add_argument("--profile-out", type=Path, default=Path("gateway-profile.txt"), help="collapsed stacks")
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        serve_bare(args.bare)
        return 0
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is needed: apt-get install wrk (or tools/install-deps.sh)\n")
        return 2

    from opsbus.common.testing.servers import nats_server, postgres_server  # noqa: PLC0415

    load_before = os.getloadavg()

    with (
        tempfile.TemporaryDirectory(prefix="opsbus-gw-bench-") as tmpdir,
        nats_server() as nats,
        postgres_server() as pg,
    ):
        tmp = Path(tmpdir)
        database_url = pg.url()
        pg_pid = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        token = asyncio.run(prepare(database_url, args.audit_rows))
        gw_port, bare_port = free_port(), free_port()
        env = {
            **os.environ,
            "OPSBUS_ENVIRONMENT": "test",
            "OPSBUS_CLUSTER": "bench",
            "OPSBUS_NATS__URL": nats.url,
            "OPSBUS_DATABASE__URL": database_url,
            "OPSBUS_HTTP__PORT": "0",
            "OPSBUS_TELEMETRY__LOG_LEVEL": "WARNING",
            "OPSBUS_GATEWAY__PORT": str(gw_port),
            "OPSBUS_GATEWAY__RATE_PER_SECOND": "1000000",
            "OPSBUS_GATEWAY__RATE_BURST": "1000000",
        }
        gateway_cmd = [sys.executable, "-m", "opsbus.gateway", "run"]
        bare_cmd = [sys.executable, __file__, "--bare", str(bare_port)]
        with (
            process(gateway_cmd, env, tmp / "gateway.log") as gw,
            process(bare_cmd, env, tmp / "bare.log") as bare,
        ):
            # after a million-row load on a busy machine the gateway took more than 3 minutes to be ready (as in
            # bench/audit_pages.py, which waits as long)
            wait_http(f"http://127.0.0.1:{gw_port}/readyz", gw, "the gateway", tmp / "gateway.log", timeout=900)
            wait_http(f"http://127.0.0.1:{bare_port}/ok", bare, "the bare app", tmp / "bare.log")
            auth = {"Authorization": f"Bearer {token}"}
            gw_url, bare_url = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{bare_port}"
            assert httpx.get(f"{gw_url}/v1/audit?limit=20", headers=auth, timeout=60).json()["items"]
            targets: dict[str, tuple[int, str, dict[str, str], Any]] = {
                "bare GET /ok": (bare.pid, f"{bare_url}/ok", {}, None),
                "bare POST /deploy": (bare.pid, f"{bare_url}/deploy", {}, DEPLOY_BODY),
                "gateway GET /v1/whoami": (gw.pid, f"{gw_url}/v1/whoami", auth, None),
                "gateway GET /v1/audit?limit=20": (gw.pid, f"{gw_url}/v1/audit?limit=20", auth, None),
                "gateway POST /v1/deployments": (gw.pid, f"{gw_url}/v1/deployments", auth, DEPLOY_BODY),
            }
            for _, url, headers, body in targets.values():
                # FastAPI builds a route's state on its first request (seconds on a loaded machine): do that,
                # then warm up under load, before anything is measured
                method = "POST" if body is not None else "GET"
                first = httpx.request(method, url, headers=headers, json=body, timeout=60)
                assert first.status_code < 300, (url, first.status_code, first.text)
                wrk(url, seconds=2, connections=args.connections, headers=headers, body=body, tmp=tmp)
            if args.profile:
                _, url, headers, body = targets[PROFILED[args.profile]]
                options = {"connections": args.connections, "headers": headers, "body": body, "tmp": tmp}
                profile(gw.pid, url, args.profile_out.resolve(), seconds=max(10, args.seconds), **options)
                return 0
            results: dict[str, list[Result]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (pid, url, headers, body) in targets.items():
                    options = {"seconds": args.seconds, "connections": args.connections, "headers": headers}
                    results[name].append(measure(pid, url, pg_pid=pg_pid, body=body, tmp=tmp, **options))
            published = asyncio.run(count_deploy_events(nats.url))
    report(results, args, published, load_before, os.getloadavg())
    return 0


async def count_deploy_events(url: str) -> int:
    import nats as nats_py  # noqa: PLC0415

    nc = await nats_py.connect(url)
    try:
        deadline = time.monotonic() + 60
        last = -1
        while time.monotonic() < deadline:  # the relay catches up after the load
            count = (await nc.jetstream().stream_info("DEPLOY")).state.messages
            if count == last:
                return count
            last = count
            await asyncio.sleep(2.0)
        return last
    finally:
        await nc.close()


def report(
    results: dict[str, list[Result]],
    args: argparse.Namespace,
    published: int,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    def median(name: str, attr: str) -> float:
        return float(statistics.median(float(getattr(r, attr)) for r in results[name]))

    cpus = os.cpu_count()
    print(f"\n{args.connections} connections, {args.rounds} rounds x {args.seconds:g}s each, median per target")
    print(f"machine: {cpus} CPUs, 1-minute load average {load_before[0]:.1f} before and {load_after[0]:.1f} after")
    print(f"{'target':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10} {'PG CPU ms':>9} {'errors':>7}")
    for name, runs in results.items():
        errors = sum(r.errors for r in runs)
        cpu, pg_cpu = median(name, "cpu_ms_per_request"), median(name, "pg_cpu_ms_per_request")
        line = f"{median(name, 'rps'):9.0f} {median(name, 'p50_ms'):8.2f} {median(name, 'p99_ms'):8.2f} {cpu:10.2f}"
        print(f"{name:34} {line} {pg_cpu:9.2f} {errors:7d}")
    print("(CPU ms/req: the serving process's own CPU; PG CPU ms: PostgreSQL's, all its processes, reported apart)")
    for name, runs in results.items():
        for r in runs:
            if r.errors or not r.requests:
                print(f"\n{name}: wrk reported errors or no answers:\n{r.raw}")
    bare_get, bare_post = median("bare GET /ok", "rps"), median("bare POST /deploy", "rps")
    print()
    bare_cpu_get, bare_cpu_post = (
        median("bare GET /ok", "cpu_ms_per_request"),
        median("bare POST /deploy", "cpu_ms_per_request"),
    )
    for name, base_cpu in (
        ("gateway GET /v1/whoami", bare_cpu_get),
        ("gateway GET /v1/audit?limit=20", bare_cpu_get),
        ("gateway POST /v1/deployments", bare_cpu_post),
    ):
        cpu = median(name, "cpu_ms_per_request")
        print(f"{name:34} {base_cpu / cpu:5.2f}x the bare endpoint's requests per CPU-second of the serving process")
    for name, base in (
        ("gateway GET /v1/whoami", bare_get),
        ("gateway GET /v1/audit?limit=20", bare_get),
        ("gateway POST /v1/deployments", bare_post),
    ):
        rps = median(name, "rps")
        print(
            f"{name:34} {rps / base:5.2f}x the bare endpoint's req/s, "
            f"{rps / STACKSTORM_RPS_PER_WORKER:6.0f}x StackStorm's ~{STACKSTORM_RPS_PER_WORKER:g} req/s per worker"
        )
    accepted = sum(r.requests - r.errors for r in results["gateway POST /v1/deployments"])
    print(
        f"\ndeploy.requested events in JetStream after the run: {published} (accepted in measured rounds: {accepted})"
    )


if __name__ == "__main__":
    sys.exit(main())
