"""Which API answers are retried: pinned, so every service treats the apiserver the same way."""

from __future__ import annotations

import pytest

from opsbus.common.errors import (
    ConflictError,
    NotFoundError,
    OpsbusError,
    PermanentError,
    TransientError,
    error_for_status,
)


@pytest.mark.parametrize(
    ("status", "expected", "retried"),
    [
        (0, TransientError, True),  # no HTTP answer: connection refused or reset
        (400, PermanentError, False),
        (403, PermanentError, False),
        (404, NotFoundError, False),
        (409, ConflictError, False),
        (422, PermanentError, False),
        (429, TransientError, True),
        (500, TransientError, True),
        (503, TransientError, True),
    ],
)
def test_status_maps_to_a_typed_error(status: int, expected: type[OpsbusError], retried: bool) -> None:
    error = error_for_status(status, f"patch Deployment shop/web: {status}")
    assert type(error) is expected
    assert isinstance(error, TransientError) is retried
    assert str(error) == f"patch Deployment shop/web: {status}"
