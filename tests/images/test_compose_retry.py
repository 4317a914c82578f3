"""The image tier's one retry: `docker-compose up` runs a second time only when a container failed on podman's DNS
race (aardvark-dns answering "Temporary failure in name resolution" while many containers join the network), never
for any other failure. Unit tests: the decision on `docker-compose logs` output as docker-compose 1.29 prints it, and
`Compose.up`'s calls with docker-compose's answers scripted (no engine needed).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.images.compose import Compose, dns_race_victims

# `docker-compose logs --no-color` after a run where one migration lost the race (the traceback asyncpg raises when
# the name `postgres` does not resolve), next to healthy output of other containers.
RACE_LOGS = """\
Attaching to t21_migrate-healer_1, t21_migrate-deployer_1, t21_nats_1, t21_postgres_1
migrate-deployer_1  | {"level": "INFO", "message": "schema at head", "service": "deployer"}
migrate-healer_1    | Traceback (most recent call last):
migrate-healer_1    |   File "/opt/opsbus/venv/lib/python3.11/site-packages/asyncpg/connect_utils.py", line 1049
migrate-healer_1    |     return await asyncio.wait_for(conn_coro, timeout)
migrate-healer_1    |   File "/usr/lib/python3.11/asyncio/base_events.py", line 1036, in create_connection
migrate-healer_1    |     infos = await self._ensure_resolved(
migrate-healer_1    | socket.gaierror: [Errno -3] Temporary failure in name resolution
nats_1              | [1] 2026/12/07 22:41:03.211934 [INF] Server is ready
postgres_1          | LOG:  database system is ready to accept connections
"""

OTHER_LOGS = """\
Attaching to t21_migrate-healer_1, t21_postgres_1
migrate-healer_1    | asyncpg.exceptions.InvalidPasswordError: password authentication failed for user "opsbus"
postgres_1          | FATAL:  password authentication failed for user "opsbus"
"""

UP_FAILED = (
    'ERROR: for healer  Container "5e0c0a1b2c3d" exited with code 1.\n'
    "ERROR: Encountered errors while bringing up the project.\n"
)


def test_the_race_names_the_container_that_lost_it() -> None:
    assert dns_race_victims(RACE_LOGS) == ["migrate-healer_1"]


def test_any_other_failure_is_no_race() -> None:
    assert dns_race_victims(OTHER_LOGS) == []
    assert dns_race_victims("") == []


def test_the_phrase_outside_a_containers_output_is_no_race() -> None:
    """docker-compose's own lines (no `container | ` prefix) are not a container's failure."""
    assert dns_race_victims("ERROR: Temporary failure in name resolution\n") == []


@dataclass
class Scripted(Compose):
    """A Compose whose docker-compose answers are scripted, one per call, in order."""

    answers: list[tuple[int, str]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(" ".join(args))
        code, out = self.answers.pop(0)
        if check and code != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {code}")
        return subprocess.CompletedProcess(["docker-compose", *args], code, out, UP_FAILED if code else "")


def _compose(answers: list[tuple[int, str]]) -> Scripted:
    return Scripted(project="t21", files=[], env={}, log_dir=Path("."), answers=answers)


def test_up_runs_once_more_after_the_race_and_then_succeeds() -> None:
    compose = _compose([(1, ""), (0, RACE_LOGS), (0, "")])
    compose.up()
    assert compose.calls == ["up --detach --no-build", "logs --no-color", "up --detach --no-build"]
    assert compose.answers == []


def test_up_fails_at_once_on_any_other_failure() -> None:
    compose = _compose([(1, ""), (0, OTHER_LOGS)])
    with pytest.raises(AssertionError, match="docker-compose up exited 1"):
        compose.up()
    assert compose.calls == ["up --detach --no-build", "logs --no-color"]


def test_up_retries_only_once() -> None:
    compose = _compose([(1, ""), (0, RACE_LOGS), (1, "")])
    with pytest.raises(AssertionError, match="exited 1"):
        compose.up()
    assert compose.calls == ["up --detach --no-build", "logs --no-color", "up --detach --no-build"]


def test_up_that_succeeds_reads_no_logs() -> None:
    compose = _compose([(0, "")])
    compose.up("gateway")
    assert compose.calls == ["up --detach --no-build gateway"]
