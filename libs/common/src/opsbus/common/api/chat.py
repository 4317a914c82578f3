"""The contract between a chat message's decision buttons and the gateway endpoint that receives the clicks.

The notifier puts Approve and Reject buttons on the Slack notice of a `recovery.planned` that waits for a
person; Slack posts the click to the gateway (`POST /v1/integrations/slack/interactions`), which decides the
step through the same path as `POST /v1/recoveries/{id}/steps/{n}/approve`. Both ends must agree on the
buttons' `action_id`s and on how a button's `value` names the step: that agreement lives here, and nowhere
else. Pure: no I/O.
"""

from __future__ import annotations

ACTION_APPROVE = "opsbus.recovery.approve"
ACTION_REJECT = "opsbus.recovery.reject"
DECISION_ACTIONS = frozenset({ACTION_APPROVE, ACTION_REJECT})
_MAX_VALUE = 2000  # Slack's limit for a button's value


def step_value(recovery_id: str, step: int) -> str:
    """A button's `value`: the recovery id and the step, `<recovery id>:<step>`."""
    return f"{recovery_id}:{step}"


def parse_step_value(value: str) -> tuple[str, int]:
    """The recovery id and step a button's value names; ValueError when it names none."""
    recovery_id, sep, step = value.rpartition(":")
    if not sep or not recovery_id or len(value) > _MAX_VALUE or not step.isdigit() or not 1 <= int(step) <= 100:
        raise ValueError(f"not a recovery step reference: {value[:80]!r}")
    return recovery_id, int(step)
