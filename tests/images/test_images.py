"""The seven service images `make images` builds, as a user runs them: each holds its own service and no other,
runs as uid 10001 on a read-only root filesystem, the gateway's carries the built console, and the extra CA bundle
given for a TLS-intercepting proxy reaches the build without being left in any layer.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.images.engine import BASE_IMAGE, SERVICES, Image, build_images, podman

pytestmark = [pytest.mark.images, pytest.mark.timeout(2400)]


def test_every_service_image_runs_its_service_unprivileged_on_a_read_only_root(images: dict[str, Image]) -> None:
    assert set(images) == set(SERVICES)
    for service, image in images.items():
        config = json.loads(podman("image", "inspect", image.ref).stdout)[0]["Config"]
        assert config["User"] == "10001:10001", service
        usage = podman("run", "--rm", "--pull=never", "--read-only", image.ref, "no-such-command", check=False)
        assert usage.returncode == 2, (service, usage.stderr)
        assert f"python -m opsbus.{service}" in usage.stderr
        others = [s for s in SERVICES if s != service]
        probe = (
            "import importlib.util as u, os; "
            f"print(os.getuid(), [s for s in {others!r} if u.find_spec('opsbus.' + s)], u.find_spec('pytest') is None)"
        )
        inside = podman("run", "--rm", "--pull=never", "--read-only", "--entrypoint", "python", image.ref, "-c", probe)
        assert inside.stdout.split("\n")[0] == "10001 [] True", (service, inside.stdout)
        write = podman(
            "run", "--rm", "--pull=never", "--read-only", "--entrypoint", "/bin/sh", image.ref, "-c",
            "touch /opt/opsbus/venv/x", check=False,
        )  # fmt: skip
        assert write.returncode != 0 and "Read-only file system" in write.stderr, (service, write.stderr)


def test_gateway_image_serves_the_built_console(images: dict[str, Image]) -> None:
    """By shape (the index's root element, every asset it names packaged beside it), not byte-equal to the working
    tree's build: another `make console` may have replaced that since the image was built."""
    script = (
        "import re; from opsbus.gateway.console_assets import PACKAGED; index = (PACKAGED / 'index.html').read_text(); "
        'names = re.findall(r\'(?:src|href)="/(assets/[^"]+)"\', index); '
        "print('<div id=\"root\">' in index, len(names), all((PACKAGED / n).is_file() for n in names))"
    )
    shown = podman("run", "--rm", "--pull=never", "--read-only", "--entrypoint", "python", images["gateway"].ref, "-c",
                   script)  # fmt: skip
    root, assets, packaged = shown.stdout.split()
    assert (root, packaged) == ("True", "True") and int(assets) >= 1, shown.stdout


def test_the_seven_images_share_one_dependency_layer(built: dict[str, Image]) -> None:
    """Every image is the dependency image's layers (base, user, the third-party virtualenv installed in place) plus
    one thin layer of opsbus code: a change to opsbus code rebuilds and ships only that layer. The optimizer's image
    adds, between the two, its own numerical stack, which no other image carries."""

    def layers(image: Image) -> list[str]:
        names: list[str] = json.loads(podman("image", "inspect", image.ref).stdout)[0]["RootFS"]["Layers"]
        return names

    deps, deps_optimizer = layers(built["deps"]), layers(built["deps-optimizer"])
    assert deps_optimizer[:-1] == deps
    for service in SERVICES:
        own = layers(built[service])
        assert own[:-1] == (deps_optimizer if service == "optimizer" else deps), service
        history = json.loads(podman("history", "--format", "json", built[service].ref).stdout)
        sizes = [int(step["size"]) for step in history if int(step["size"]) > 0]  # newest first; labels add none
        assert sizes[0] < 20_000_000, (service, sizes)  # opsbus-common and the service
        assert max(sizes) > 100_000_000, (service, sizes)  # the shared virtualenv
    assert len({layers(built[s])[-1] for s in SERVICES}) == len(SERVICES)
    numerical = (
        "import importlib.util as u; print(u.find_spec('numpy') is not None, u.find_spec('statsmodels') is not None)"
    )
    for service in SERVICES:
        found = podman("run", "--rm", "--pull=never", "--read-only", "--entrypoint", "python", built[service].ref,
                       "-c", numerical).stdout.split()  # fmt: skip
        assert found == [str(service == "optimizer")] * 2, service


def _self_signed(directory: Path) -> str:
    """A throwaway CA certificate (PEM); its base64 body is what must never appear in an image."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         f"/CN=opsbus image tier test CA {uuid.uuid4().hex}", "-keyout", str(directory / "ca.key"),
         "-out", str(directory / "ca.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return (directory / "ca.pem").read_text()


def _holds(image: str, marker: bytes, directory: Path) -> list[str]:
    """Where in the saved image (config, history, every file of every layer) the marker occurs."""
    archive = directory / f"{uuid.uuid4().hex}.tar"
    podman("save", "--format", "docker-archive", "--output", str(archive), image)
    found = []
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            blob = outer.extractfile(member) if member.isfile() else None
            if blob is None:
                continue
            data = blob.read()
            if marker in data:
                found.append(member.name)
            if member.name.endswith(".tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for entry in layer.getmembers():
                        content = layer.extractfile(entry) if entry.isfile() else None  # links hold no bytes
                        if content is not None and marker in content.read():
                            found.append(f"{member.name}:{entry.name}")
    archive.unlink()
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    if marker.decode() in history:
        found.append("history")
    return found


def test_extra_ca_reaches_the_build_and_no_layer(images: dict[str, Image], tmp_path: Path) -> None:
    pem = _self_signed(tmp_path)
    marker = pem.splitlines()[5].encode()  # a line of the certificate's base64 body
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    bundle = tmp_path / "bundle.pem"  # what an operator passes: the machine's trust plus the proxy's CA
    bundle.write_text((system.read_text() if system.exists() else "") + pem)

    # the scan finds a CA that is in a layer (so a clean result below means something)
    context = tmp_path / "control"
    context.mkdir()
    (context / "ca.pem").write_text(pem)
    (context / "Containerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY ca.pem /usr/local/share/ca.pem\n")
    control = f"localhost/opsbus-ca-control:{uuid.uuid4().hex[:8]}"
    podman("build", "--pull=never", "--tag", control, str(context))
    try:
        assert _holds(control, marker, tmp_path)
    finally:
        podman("rmi", "--force", control, check=False)

    # the real build with the bundle as its secret, the notifier's own steps run again (no layer cache); the dependency
    # image is reused: rebuilding it is a cold install of every dependency, too long for this tier
    *_, rebuilt = build_images(["notifier"], {"OPSBUS_EXTRA_CA": str(bundle), "OPSBUS_IMAGES_REBUILD": "1"})
    try:
        assert rebuilt.build_seconds > 0
        assert _holds(rebuilt.ref, marker, tmp_path) == []
    finally:  # back to the image built from the cache, which shares its dependency layer with the other six
        podman("rmi", "--force", rebuilt.ref, check=False)
        build_images(["notifier"])
