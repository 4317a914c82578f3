"""docker-compose.yml and the Dockerfile: Debian's docker-compose validates the file, every opsbus service waits for
healthy NATS/PostgreSQL and its own migration, and hadolint finds nothing in the Dockerfile (and does find problems in
a bad one, so a clean run means something).
"""

from __future__ import annotations

import os
import re
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


def _stages(text: str) -> dict[str, str]:
    """The Dockerfile's stages by name: the instructions from `FROM ... AS <name>` to the next FROM."""
    stages: dict[str, str] = {}
    for chunk in re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]:
        name = re.match(r"\S+ AS (\S+)", chunk)
        assert name is not None, chunk.splitlines()[0]
        stages[name.group(1)] = chunk
    return stages


def _packages(stage: str) -> list[str]:
    """The workspace members a stage's `uv sync` installs the third-party dependencies of."""
    return re.findall(r"--package (opsbus-[a-z]+)", stage)


def test_image_runs_unprivileged_with_the_service_entrypoint() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = _stages(text)
    deps, runtime = stages["deps"], stages["runtime"]
    assert "USER 10001:10001" in deps and 'exec python -m \\"opsbus.${OPSBUS_SERVICE}\\"' in deps
    assert "uv sync --frozen --no-dev --no-install-workspace" in deps  # the shared dependency layer, from the lock
    users = re.findall(r"^USER (\S+)$", stages["deps-optimizer"], flags=re.MULTILINE)
    assert users == ["0", "10001:10001"]  # root only for its install
    # every image: its dependency stage (or the image `make images` built from it) plus one thin layer of opsbus code
    assert "ARG DEPS_IMAGE=deps-${SERVICE}" in text and runtime.startswith("${DEPS_IMAGE} AS runtime")
    assert "USER" not in runtime and "RUN" not in runtime
    assert "uv pip install --no-deps --no-sources --target /opt/opsbus/app" in stages["app"]
    for service in SERVICES:
        assert stages[f"deps-{service}"].startswith("deps AS ") or service == "optimizer", service
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "**/tests/" in ignored and "*" in ignored


def test_only_the_optimizer_image_carries_the_numerical_stack() -> None:
    """The shared layer installs every service's dependencies but the optimizer's; deps-optimizer adds those."""
    stages = _stages(DOCKERFILE.read_text(encoding="utf-8"))
    assert sorted(_packages(stages["deps"])) == sorted(f"opsbus-{s}" for s in SERVICES if s != "optimizer")
    assert _packages(stages["deps-optimizer"]) == ["opsbus-optimizer"]
    assert "--inexact" in stages["deps-optimizer"]  # added to the shared virtualenv, nothing removed


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context as .dockerignore leaves it: the workspace metadata and sources, no tests or caches."""
    context = tmp_path_factory.mktemp("context")
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(REPO_ROOT / name, context / name)
    for folder in ("libs", "services", "tools"):
        shutil.copytree(
            REPO_ROOT / folder,
            context / folder,
            ignore=shutil.ignore_patterns("tests", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", "install.d"),
        )
    return context


def _uv(context: Path, venv: Path, *args: str) -> None:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [on_path("uv"), *args, "--quiet"], cwd=context, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def dependency_venvs(context: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What the Dockerfile's deps and deps-optimizer stages run, without Docker, with their `--package` lists read
    from the Dockerfile: the shared virtualenv, and a second one with the optimizer's additions on top.
    (The image also compiles bytecode and copies files; here uv's default hardlinks keep it fast. What is installed
    is the same.)"""
    stages = _stages(DOCKERFILE.read_text(encoding="utf-8"))
    venvs: dict[str, Path] = {}
    for name, parent in (("deps", None), ("deps-optimizer", "deps")):
        venv = tmp_path_factory.mktemp(name) / "venv"
        if parent is not None:
            shutil.copytree(venvs[parent], venv, symlinks=True)
        packages = [arg for p in _packages(stages[name]) for arg in ("--package", p)]
        inexact = ["--inexact"] if "--inexact" in stages[name] else []
        _uv(context, venv, "sync", "--frozen", "--no-dev", "--no-install-workspace", *inexact, *packages)
        venvs[name] = venv
    return venvs


@pytest.mark.timeout(900)  # a cold `uv sync` into a fresh virtualenv, on a loaded runner
@pytest.mark.parametrize("service", SERVICES)
def test_image_build_stage_installs_the_service_alone(
    service: str, context: Path, dependency_venvs: dict[str, Path], tmp_path: Path
) -> None:
    """What the Dockerfile's app stage runs on top of the service's dependency stage: opsbus-common and the service
    installed without dependencies into a directory of their own (/opt/opsbus/app, on PYTHONPATH), from which
    `python -m opsbus.<service>` starts (and refuses an unknown command with its usage) without the repository;
    no development tool, no other service, and the numerical stack only in the optimizer."""
    venv = dependency_venvs["deps-optimizer" if service == "optimizer" else "deps"]
    app = tmp_path / "app"
    python = venv / "bin" / "python"
    _uv(context, venv, "pip", "install", "--no-deps", "--no-sources", "--target", str(app), "--python", str(python),
        "./libs/common", f"./services/{service}")  # fmt: skip
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(app), "OPSBUS_ENVIRONMENT": "development"}
    # timeout: unlike the image's, this virtualenv has no bytecode; the optimizer's first start compiles statsmodels,
    # scipy and pandas (over two minutes at load 18)
    started = subprocess.run(
        [python, "-m", f"opsbus.{service}", "no-such-command"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert started.returncode == 2, started.stderr
    assert f"python -m opsbus.{service}" in started.stderr
    others = [s for s in SERVICES if s != service]
    probe = (
        "import importlib.util as u; "
        f"print([s for s in {others!r} if u.find_spec('opsbus.' + s)], u.find_spec('pytest') is None, "
        "u.find_spec('mypy') is None, u.find_spec('numpy') is not None, u.find_spec('statsmodels') is not None)"
    )
    installed = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path, env=env
    )
    numerical = str(service == "optimizer")
    assert installed.stdout.split() == ["[]", "True", "True", numerical, numerical], installed.stdout
