"""docker-compose.yml and the Dockerfile: Debian's docker-compose validates the file, every opsbus service waits for
healthy NATS/PostgreSQL and its own migration, and hadolint finds nothing in the Dockerfile (and does find problems in
a bad one, so a clean run means something).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO_ROOT, hadolint, ok, on_path, run

# These run the real tools (helm, hadolint, promtool, docker-compose, uv): not unit tests.
pytestmark = pytest.mark.integration

SERVICES = ("watcher", "healer", "deployer", "optimizer", "notifier", "analyzer", "gateway")
MIGRATING = ("healer", "deployer", "optimizer", "notifier", "analyzer", "gateway")
DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"


def _compose() -> dict[str, Any]:
    config = ok(on_path("docker-compose"), "--file", REPO_ROOT / "docker-compose.yml", "config")
    data: dict[str, Any] = yaml.safe_load(config)
    return data


def test_docker_compose_config_validates_and_has_the_whole_platform() -> None:
    services = _compose()["services"]
    infrastructure = {"nats", "postgres", "jaeger", "prometheus", "grafana"}
    assert set(services) == infrastructure | set(SERVICES) | {f"migrate-{s}" for s in MIGRATING}
    for name in infrastructure - {"grafana"}:
        assert services[name]["healthcheck"]["test"], name
    assert "--jetstream" in services["nats"]["command"]


def test_services_wait_for_healthy_dependencies_and_their_migration() -> None:
    services = _compose()["services"]
    for name in SERVICES:
        service = services[name]
        depends = service["depends_on"]
        assert depends["nats"] == {"condition": "service_healthy"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        if name in MIGRATING:
            assert depends[f"migrate-{name}"] == {"condition": "service_completed_successfully"}, name
            assert services[f"migrate-{name}"]["command"] == ["migrate"]
        assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert service["build"]["args"] == {"SERVICE": name}
        env = service["environment"]
        assert env["OPSBUS_NATS__URL"] == "nats://nats:4222"
        assert env["OPSBUS_HTTP__HOST"] == "0.0.0.0"
        assert env["OPSBUS_TELEMETRY__OTLP_ENDPOINT"] == "http://jaeger:4318/v1/traces"
    for name in ("watcher", "healer", "deployer", "optimizer", "analyzer"):
        mounts = " ".join(services[name]["volumes"])
        assert ":/etc/opsbus/kubeconfig:ro" in mounts, name


def test_docker_compose_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        'version: "3.8"\nservices:\n  nats:\n    image: nats\n    depends_on: {postgres: {condition: maybe}}\n'
    )
    result = run(on_path("docker-compose"), "--file", broken, "config", "-q")
    assert result.returncode != 0


def test_dockerfile_lints_clean() -> None:
    ok(hadolint(), "--failure-threshold", "info", DOCKERFILE)


def test_hadolint_flags_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nADD . /app\n")
    result = run(hadolint(), careless)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_image_runs_unprivileged_with_the_service_entrypoint() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    runtime = text.split("AS runtime", 1)[1]
    assert "USER 10001:10001" in runtime
    assert "uv sync --frozen --no-dev --no-install-workspace" in text  # the shared dependency layer, from the lock
    assert "uv pip install --no-deps --target /opt/opsbus/app" in text  # opsbus code, a thin layer per image
    assert 'exec python -m \\"opsbus.${OPSBUS_SERVICE}\\"' in runtime
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "**/tests/" in ignored and "*" in ignored


@pytest.mark.timeout(900)  # a cold `uv sync` into a fresh virtualenv, on a loaded runner
@pytest.mark.parametrize("service", SERVICES)
def test_image_build_stage_installs_the_service_alone(service: str, tmp_path: Path) -> None:
    """What the Dockerfile's build stage runs, without Docker: the build context (as .dockerignore leaves it) and
    `uv sync --frozen --no-dev --no-editable --package opsbus-<service>` into a fresh virtualenv, from which
    `python -m opsbus.<service>` starts (and refuses an unknown command with its usage) without the repository."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(REPO_ROOT / name, context / name)
    for folder in ("libs", "services", "tools"):
        shutil.copytree(
            REPO_ROOT / folder,
            context / folder,
            ignore=shutil.ignore_patterns("tests", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", "install.d"),
        )
    venv = tmp_path / "venv"
    # The image also compiles bytecode and copies files (UV_COMPILE_BYTECODE, UV_LINK_MODE=copy); here the default
    # hardlinks from uv's cache keep the check fast. What is installed is the same.
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)
    sync = subprocess.run(
        [on_path("uv"), "sync", "--frozen", "--no-dev", "--no-editable", "--package", f"opsbus-{service}", "--quiet"],
        cwd=context, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert sync.returncode == 0, sync.stderr
    shutil.rmtree(context)  # the image keeps only the virtualenv
    python = venv / "bin" / "python"
    started = subprocess.run(
        [python, "-m", f"opsbus.{service}", "no-such-command"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "OPSBUS_ENVIRONMENT": "development"},
    )  # fmt: skip
    assert started.returncode == 2, started.stderr
    assert f"python -m opsbus.{service}" in started.stderr
    installed = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('pytest') is None, u.find_spec('mypy') is None)"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert installed.stdout.split() == ["True", "True"], "development tools leaked into the image"
