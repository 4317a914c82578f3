"""Whether a ladder step applies to an incident: its `when`, judged against the rollout history and the diagnosis.

`when: changed|unchanged` reads the workload's ReplicaSet history (a new pod template shortly before the first
alert). `when: {cause: rollout, min_confidence: 0.6}` reads the analyzer's top cause of the incident, which the
executor passes in (the latest `diagnosis.made`/`diagnosis.revised` it stored); the analyzer may not have
answered yet, and the healer never blocks on it: then the step is judged by its `without_diagnosis` fallback
(the rollout history) or passed, unless the policy asks to wait a bounded time for the diagnosis. Pure: the
inputs are plain data and the elapsed time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsbus.common.events.payloads import CauseKind
from opsbus.healer.domain.policy import CauseWhen, When


@dataclass(frozen=True, slots=True)
class TopCause:
    """The analyzer's latest answer for the incident: its top cause, or `kind` None when it found none."""

    incident_id: str
    revision: int
    kind: CauseKind | None
    confidence: float = 0.0
    summary: str = ""


@dataclass(frozen=True, slots=True)
class History:
    """What the rollout history says: whether a rollout preceded the first alert, and in words."""

    changed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """`applies`, with the reason; `wait` (seconds): not yet, a diagnosis is awaited that much longer."""

    applies: bool
    detail: str
    wait: float | None = None


def describe(when: When | CauseWhen) -> str:
    if isinstance(when, When):
        return when.value
    return f"cause {when.cause.value} (confidence >= {when.min_confidence:g})"


def _by_history(when: When, history: History) -> Verdict:
    if when is When.ALWAYS:
        return Verdict(True, "always")
    return Verdict(history.changed == (when is When.CHANGED), history.detail)


def judge(when: When | CauseWhen, history: History, diagnosis: TopCause | None, waited: float) -> Verdict:
    """Whether a step with this `when` applies; `waited`: seconds since the incident's alert fired."""
    if isinstance(when, When):
        return _by_history(when, history)
    if diagnosis is not None and diagnosis.kind is not None:
        top = f"top cause {diagnosis.kind.value} at confidence {diagnosis.confidence:.2f} (diagnosis revision "
        top += f"{diagnosis.revision}{': ' + diagnosis.summary if diagnosis.summary else ''})"
        return Verdict(diagnosis.kind is when.cause and diagnosis.confidence >= when.min_confidence, top)
    if diagnosis is None and when.wait > 0 and waited < when.wait:
        left = min(when.wait - waited, when.wait)  # a clock behind the alert's never waits longer than `wait`
        return Verdict(False, f"waiting {left:.0f}s more for the analyzer's diagnosis (wait {when.wait:.0f}s)", left)
    missing = "no diagnosis yet" if diagnosis is None else "the analyzer found no cause"
    if when.without_diagnosis is None:
        return Verdict(False, f"{missing}: the healer does not wait for the analyzer")
    fallback = _by_history(when.without_diagnosis, history)
    return Verdict(
        fallback.applies, f"{missing}; by the rollout history ({when.without_diagnosis.value}): {fallback.detail}"
    )
