"""Fixtures of the image tier (`make test-images`): the seven service images built by `make images`'s script
(cached by the hash of their inputs), and the sandbox cluster of the cluster tier (`OPSBUS_TEST_KUBECONFIG` or the
sandbox, reused when up). Skipped, with the reason, where no container engine can run.
"""

from __future__ import annotations

import pytest

from tests.cluster.conftest import api_client, sandbox
from tests.images.engine import SERVICES, Image, build_images, engine_unavailable

__all__ = ["api_client", "sandbox"]  # session fixtures reused from the cluster tier


@pytest.fixture(scope="session")
def built() -> dict[str, Image]:
    """Every image the script built or found: the dependency images (`deps`, `deps-optimizer`) and the seven."""
    reason = engine_unavailable()
    if reason is not None:
        pytest.skip(f"image tier: {reason}")
    return {image.service: image for image in build_images()}


@pytest.fixture(scope="session")
def images(built: dict[str, Image]) -> dict[str, Image]:
    """The seven service images."""
    return {service: built[service] for service in SERVICES}
