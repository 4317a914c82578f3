"""The external checkers the deploy tests run, found where `tools/install-deps.sh` puts them.

helm and hadolint live in the opsbus cache (`$OPSBUS_CACHE_DIR`, default `~/.cache/opsbus`) under the version pinned in
`tools/versions.env`; promtool and docker-compose come from Debian's packages on PATH. A missing tool fails the test
with the command that installs it: these checks are part of `make test`, so they are never silently skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "deploy" / "helm" / "opsbus"
OBSERVABILITY = REPO_ROOT / "deploy" / "observability"
INSTALL_HINT = "run `make setup` (tools/install-deps.sh installs it)"


def pinned(name: str, where: Path = REPO_ROOT / "tools" / "versions.env") -> str:
    """A version from tools/versions.env (or another versions file)."""
    for line in where.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    raise KeyError(f"{name} is not pinned in {where}")


def kube_version() -> str:
    """The Kubernetes version the chart is rendered for: the sandbox's. A helm built with `go install` carries no
    version stamp and would otherwise assume v1.20, which the chart's kubeVersion constraint refuses."""
    return pinned("KUBE_VERSION", REPO_ROOT / "deploy" / "sandbox" / "versions.env")


def _cache() -> Path:
    return Path(os.environ.get("OPSBUS_CACHE_DIR", str(Path.home() / ".cache" / "opsbus")))


def helm() -> Path:
    path = _cache() / "helm" / pinned("HELM_VERSION") / "helm"
    if not path.is_file():
        pytest.fail(f"helm {pinned('HELM_VERSION')} not found at {path}: {INSTALL_HINT}")
    return path


def hadolint() -> Path:
    path = _cache() / "hadolint" / pinned("HADOLINT_VERSION") / "bin" / "hadolint"
    if not path.exists():
        pytest.fail(f"hadolint {pinned('HADOLINT_VERSION')} not found at {path}: {INSTALL_HINT}")
    return path


def on_path(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH: {INSTALL_HINT}")
    return Path(found)


def run(*argv: str | Path, timeout: float = 120, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool and return its result whatever the exit code (the test asserts on it)."""
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


def ok(*argv: str | Path, timeout: float = 120) -> str:
    """Run a tool that must succeed; its stdout."""
    result = run(*argv, timeout=timeout)
    command = " ".join(map(str, argv))
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def render(
    *values: Path, sets: tuple[str, ...] = (), release: str = "opsbus", namespace: str = "opsbus"
) -> list[dict[str, Any]]:
    """`helm template` of the chart (hooks included) parsed into its objects."""
    argv: list[str | Path] = [helm(), "template", release, CHART, "--namespace", namespace]
    argv += ["--kube-version", kube_version()]
    for file in values:
        argv += ["--values", file]
    for assignment in sets:
        argv += ["--set", assignment]
    return [doc for doc in yaml.safe_load_all(ok(*argv)) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
