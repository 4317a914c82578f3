"""The consumer reads delivery attempt and stream sequence from the JetStream ack subject (both formats)."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from opsbus.common.bus.consuming import _delivery_of


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.ALERT.healer-alerts.3.1042.977.1763830000000000000.12",
        "$JS.ACK.hub.ACCOUNTHASH.ALERT.healer-alerts.3.1042.977.1763830000000000000.12.random",
    ],
    ids=["v1", "v2-with-domain"],
)
def test_delivery_attempt_and_sequence_match_nats_py_metadata(reply: str) -> None:
    msg = Msg(_client=None, subject="alert.fired.prod.payments", reply=reply, data=b"{}")  # type: ignore[arg-type]
    assert _delivery_of(msg) == (3, 1042)
    assert (msg.metadata.num_delivered, msg.metadata.sequence.stream) == (3, 1042)
