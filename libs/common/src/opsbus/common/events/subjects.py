"""NATS subjects of opsbus events: `<family>.<verb>.<cluster>.<namespace>`.

Subjects are how teams filter (`alert.fired.prod.payments`, `deploy.*.*.payments`), so every token is
validated: a token containing `.`, `*`, `>`, whitespace or nothing at all would silently change what a
wildcard matches. Cluster-scoped objects use the namespace token `_`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLUSTER_SCOPED = "_"
DLQ_PREFIX = "dlq"

# A NATS token: no separators, wildcards, whitespace or control characters. We are stricter than NATS and
# accept what Kubernetes names and cluster names use, so a subject can be read back into its parts.
_TOKEN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
_MAX_TOKEN = 253


class SubjectError(ValueError):
    """A subject or one of its tokens is not valid."""


def validate_token(value: str, *, what: str) -> str:
    """Return `value` if it can be one subject token, else raise `SubjectError` saying why."""
    if not value:
        raise SubjectError(f"{what} must not be empty")
    if len(value) > _MAX_TOKEN:
        raise SubjectError(f"{what} {value[:40]!r}... is longer than {_MAX_TOKEN} characters")
    if not _TOKEN.match(value):
        raise SubjectError(
            f"{what} {value!r} is not a valid NATS subject token: use letters, digits, '-' and '_' "
            "(no '.', '*', '>', spaces or other characters), starting with a letter, digit or '_'"
        )
    return value


@dataclass(frozen=True, slots=True)
class Subject:
    """The parts of an event subject."""

    family: str
    verb: str
    cluster: str
    namespace: str = CLUSTER_SCOPED

    def __post_init__(self) -> None:
        validate_token(self.family, what="family")
        validate_token(self.verb, what="verb")
        validate_token(self.cluster, what="cluster name")
        validate_token(self.namespace, what="namespace")

    def __str__(self) -> str:
        return f"{self.family}.{self.verb}.{self.cluster}.{self.namespace}"

    @property
    def is_cluster_scoped(self) -> bool:
        return self.namespace == CLUSTER_SCOPED

    @classmethod
    def parse(cls, subject: str) -> Subject:
        """Parse `<family>.<verb>.<cluster>.<namespace>`; raise `SubjectError` on anything else."""
        parts = subject.split(".")
        if len(parts) != 4:
            raise SubjectError(
                f"subject {subject!r} must have 4 tokens <family>.<verb>.<cluster>.<namespace>, it has {len(parts)}"
            )
        return cls(*parts)


def subject_for(family: str, verb: str, cluster: str, namespace: str | None) -> str:
    """Build a subject string; `namespace=None` means a cluster-scoped object (`_`)."""
    return str(Subject(family, verb, cluster, namespace or CLUSTER_SCOPED))


def dlq_subject(original: str) -> str:
    """The dead-letter subject of a message first published on `original`."""
    return f"{DLQ_PREFIX}.{original}"


def validate_pattern(pattern: str) -> str:
    """Validate a subscription pattern such as `deploy.*.*.payments` or `alert.>`."""
    parts = pattern.split(".")
    for index, part in enumerate(parts):
        if part == ">" and index != len(parts) - 1:
            raise SubjectError(f"pattern {pattern!r}: '>' may only be the last token")
        if part in {"*", ">"}:
            continue
        validate_token(part, what=f"token {index + 1} of pattern {pattern!r}")
    return pattern
