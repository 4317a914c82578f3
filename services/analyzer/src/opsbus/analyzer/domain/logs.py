"""Log templates that appear only in failing pods: mined with drain3 over the failing pods' lines and the same
containers' healthy baseline together, so a template is "new" only when no baseline line falls in its cluster.

Lines are masked first (IP addresses, UUIDs, long hex ids, durations) so two crashes that differ only in such
values share a template, while host names and ports stay: `connection refused to postgres:5432` names the
dependency. Pure: lines come in, templates come out; fetching logs is the executor's job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

MAX_LINES_PER_SAMPLE = 200
MAX_LINE_CHARS = 1000

# Words that mark a line as an error worth reporting (a new INFO line in failing pods says little).
_ERRORISH = re.compile(
    r"(?i)\b(error|err|fatal|panic|exception|traceback|refused|timeout|timed out|unreachable|denied|"
    r"failed|failure|cannot|can't|unable|no such host|not found|invalid|killed|oom|out of memory|reset)\b"
)
# Words that say the failure is in something the pod talks to.
_DEPENDENCY = re.compile(
    r"(?i)(connection refused|connection reset|no such host|timed? ?out|unreachable|dial tcp|"
    r"name resolution|could not connect|couldn't connect|503|502|504|upstream)"
)
_HOST_PORT = re.compile(r"(?<![\w.-])([a-z][a-z0-9-]{1,62})(?:\.[a-z0-9.-]+)?:(\d{2,5})\b")


@dataclass(frozen=True, slots=True)
class LogSample:
    """Lines of one container of one pod; `failing` says whether the pod belongs to the incident."""

    pod: str
    container: str
    lines: tuple[str, ...]
    failing: bool


@dataclass(frozen=True, slots=True)
class NovelTemplate:
    """A template seen in failing pods and in no baseline line."""

    template: str
    sample: str
    pods: frozenset[str]
    count: int
    errorish: bool
    dependency: str | None  # host named in a dependency-failure line, e.g. `postgres`
    baseline_checked: bool  # False when no healthy baseline was available to compare with


@dataclass(frozen=True, slots=True)
class Mined:
    novel: tuple[NovelTemplate, ...]
    failing_lines: int
    baseline_lines: int
    failing_pods: frozenset[str] = field(default_factory=frozenset)


def _config() -> TemplateMinerConfig:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.drain_sim_th = 0.5
    config.masking_instructions = [
        MaskingInstruction(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "UUID"),
        MaskingInstruction(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "IP"),
        MaskingInstruction(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{16,}\b", "HEX"),
        MaskingInstruction(r"\b\d+(?:\.\d+)?(?:ms|s|us|µs|ns|m)\b", "DURATION"),
    ]
    return config


def _dependency(line: str) -> str | None:
    if not _DEPENDENCY.search(line):
        return None
    found = _HOST_PORT.search(line)
    return found.group(1) if found else None


def mine(samples: Sequence[LogSample]) -> Mined:
    """The templates that appear in failing samples and in no baseline sample, most frequent first."""
    miner = TemplateMiner(config=_config())
    per_line: list[tuple[int, str, LogSample]] = []
    failing_lines = baseline_lines = 0
    for sample in samples:
        for raw in sample.lines[-MAX_LINES_PER_SAMPLE:]:
            line = raw.strip()[:MAX_LINE_CHARS]
            if not line:
                continue
            result = miner.add_log_message(line)
            per_line.append((int(result["cluster_id"]), line, sample))
            if sample.failing:
                failing_lines += 1
            else:
                baseline_lines += 1
    baseline_clusters = {cid for cid, _, s in per_line if not s.failing}
    templates = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    found: dict[int, list[tuple[str, LogSample]]] = {}
    for cid, line, sample in per_line:
        if sample.failing and cid not in baseline_clusters:
            found.setdefault(cid, []).append((line, sample))
    novel = []
    for cid, hits in found.items():
        sample_line = hits[-1][0]
        novel.append(
            NovelTemplate(
                template=templates.get(cid, sample_line),
                sample=sample_line,
                pods=frozenset(s.pod for _, s in hits),
                count=len(hits),
                errorish=any(_ERRORISH.search(line) for line, _ in hits),
                dependency=next((d for d in (_dependency(line) for line, _ in hits) if d), None),
                baseline_checked=baseline_lines > 0,
            )
        )
    novel.sort(key=lambda t: (not t.errorish, t.dependency is None, -len(t.pods), -t.count, t.template))
    return Mined(
        novel=tuple(novel),
        failing_lines=failing_lines,
        baseline_lines=baseline_lines,
        failing_pods=frozenset(s.pod for s in samples if s.failing),
    )
