"""Remediation policies: declarative YAML (config as code) -> validated, immutable policy objects.

A policy matches alerts (alertname, label matchers in Alertmanager syntax, a namespace selector, severity)
and names an ordered ladder of actions, each with parameters, a verification and a timeout, plus the safety
settings that apply to it (dry run, cooldown, attempt budget, blast radius, approval). Keptn's
remediation.yaml had no per-step timeout and an implicit loop (keptn#4799, #4624): here every step says how
it is verified and how long that may take, and the ladder ends in escalation, never a loop.

Validation errors name the offending YAML line, because policies are edited by people in files and through
the gateway. This module is pure: it parses text and returns data; it never reads files or the cluster.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from opsbus.common.events.payloads import ActionKind, CauseKind, Severity

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')

# Actions that take capacity away. Approval is required for these when a policy does not say otherwise.
DISRUPTIVE = frozenset({ActionKind.DRAIN_NODE, ActionKind.DELETE_POD, ActionKind.SCALE, ActionKind.CORDON_NODE})
NODE_ACTIONS = frozenset({ActionKind.CORDON_NODE, ActionKind.DRAIN_NODE})
WORKLOAD_ACTIONS = frozenset(
    {ActionKind.ROLLOUT_RESTART, ActionKind.ROLLBACK, ActionKind.SCALE, ActionKind.RAISE_MEMORY_LIMIT}
)


def parse_duration(value: object) -> float:
    """Seconds from `90`, `90s`, `10m`, `1h`, `1.5d`."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 30s, 10m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (use seconds or a string like 30s, 10m, 1h)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


class LabelMatcher(_Model):
    """One Alertmanager matcher: `name=value`, `name!=value`, `name=~regex`, `name!~regex` (regexes anchored)."""

    name: str
    op: MatchOp
    value: str

    @classmethod
    def parse(cls, text: str) -> LabelMatcher:
        m = _MATCHER.match(text)
        if not m:
            raise ValueError(f'{text!r} is not a matcher like name="value", name!=v, name=~regex, name!~regex')
        matcher = cls(name=m.group(1), op=MatchOp(m.group(2)), value=m.group(3))
        if matcher.op in (MatchOp.RE, MatchOp.NRE):
            try:
                re.compile(matcher.value)
            except re.error as exc:
                raise ValueError(f"{text!r}: invalid regex: {exc}") from None
        return matcher

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        match self.op:
            case MatchOp.EQ:
                return value == self.value
            case MatchOp.NE:
                return value != self.value
            case MatchOp.RE:
                return re.fullmatch(self.value, value) is not None
            case MatchOp.NRE:
                return re.fullmatch(self.value, value) is None


def _matchers(value: object) -> object:
    if isinstance(value, Mapping):  # {name: value} shorthand for equality
        return [LabelMatcher(name=str(k), op=MatchOp.EQ, value=str(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [LabelMatcher.parse(v) if isinstance(v, str) else v for v in value]
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


class NamespaceSelector(_Model):
    """Glob patterns; `exclude` wins over `include`. Protected namespaces are refused by a guard anyway."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def matches(self, namespace: str | None) -> bool:
        ns = namespace or ""
        if any(fnmatch.fnmatchcase(ns, p) for p in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(ns, p) for p in self.include)


class Match(_Model):
    alertname: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = Field(min_length=1)
    severity: Annotated[tuple[Severity, ...], BeforeValidator(_one_or_many)] = ()
    labels: Annotated[tuple[LabelMatcher, ...], BeforeValidator(_matchers)] = ()
    namespaces: NamespaceSelector = NamespaceSelector()


class VerifyCheck(StrEnum):
    """How a step is verified. `alert_resolved` waits for `alert.resolved`; the others read the object."""

    ALERT_RESOLVED = "alert_resolved"
    POD_REPLACED = "pod_replaced"  # the target pod (by uid) is gone and its workload is available again
    WORKLOAD_AVAILABLE = "workload_available"  # available replicas == desired, rollout complete
    NODE_CORDONED = "node_cordoned"
    NODE_DRAINED = "node_drained"  # no evictable pods left on the node
    NO_FAILED_PODS = "no_failed_pods"
    DEPLOY_SUCCEEDED = "deploy_succeeded"  # the deployer answered the rollback with succeeded/rolledback
    NONE = "none"  # notify_only: nothing to verify


class When(StrEnum):
    """When a step applies, judged against the workload's rollout history at planning time."""

    ALWAYS = "always"
    CHANGED = "changed"  # only when a rollout (a new pod template) preceded the incident's first alert
    UNCHANGED = "unchanged"  # only when none did


class CauseWhen(_Model):
    """`when: {cause: rollout, min_confidence: 0.6}`: the step applies when the analyzer's top cause of the
    incident is of that kind with at least that confidence. The healer never blocks on the analyzer: with no
    diagnosis yet (or one that found no cause) the step is judged by `without_diagnosis` (the rollout history,
    like `when: changed`), or passed when that is not set; `wait` defers the step a bounded time after the
    alert for a diagnosis to arrive first."""

    cause: CauseKind
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    without_diagnosis: When | None = None
    wait: Duration = Field(default=0.0, ge=0, le=120)


def _when_form(value: object) -> str:
    return "cause" if isinstance(value, Mapping | CauseWhen) else "history"


# `when: changed` (a word: the rollout history) or `when: {cause: ...}` (a mapping: the diagnosis); the
# discriminator keeps a mistake in one form from being reported against the other as well.
StepWhen = Annotated[Annotated[When, Tag("history")] | Annotated[CauseWhen, Tag("cause")], Discriminator(_when_form)]


class Step(_Model):
    action: ActionKind
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    verify: VerifyCheck = VerifyCheck.ALERT_RESOLVED
    timeout: Duration = Field(default=120.0, gt=0, le=86400)
    when: StepWhen = When.ALWAYS

    @model_validator(mode="after")
    def _params(self) -> Self:
        p = self.params
        if self.action is ActionKind.RAISE_MEMORY_LIMIT:
            factor = p.get("factor", 1.5)
            if not isinstance(factor, int | float) or isinstance(factor, bool) or not 1.0 < factor <= 4.0:
                raise ValueError("raise_memory_limit: params.factor must be a number in (1, 4]")
            if not isinstance(p.get("ceiling_bytes"), int) or isinstance(p.get("ceiling_bytes"), bool):
                raise ValueError(
                    "raise_memory_limit: params.ceiling_bytes (an integer) is required: the raise is bounded"
                )
        if self.action is ActionKind.SCALE:
            replicas = p.get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ValueError("scale: params.replicas (a non-negative integer) is required")
        if self.action is ActionKind.NOTIFY_ONLY and self.verify is not VerifyCheck.NONE:
            object.__setattr__(self, "verify", VerifyCheck.NONE)
        return self


class BlastRadius(_Model):
    max_pod_fraction: float = Field(default=0.34, gt=0, le=1, description="Share of a workload's pods down at once.")
    max_nodes: int = Field(default=1, ge=1, description="Nodes cordoned or drained at a time, cluster-wide.")


class Approval(_Model):
    required_for: tuple[ActionKind, ...] = (ActionKind.DRAIN_NODE,)
    expires_after: Duration = Field(default=1800.0, gt=0)


class Policy(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    description: str = ""
    match: Match
    ladder: tuple[Step, ...] = Field(min_length=1, max_length=10)
    dry_run: bool = False
    cooldown: Duration = 600.0
    max_attempts: int = Field(default=5, ge=1, description="Actions on one target within attempt_window.")
    attempt_window: Duration = Field(default=3600.0, gt=0)
    blast_radius: BlastRadius = BlastRadius()
    approval: Approval = Approval()
    escalate_after: Duration = Field(
        default=300.0,
        gt=0,
        description="An incident still deferred (not acted on) this long after it opened is escalated.",
    )
    group_window: Duration = Field(
        default=600.0,
        ge=0,
        description="Alerts of one workload (or node) firing within this long of an incident's first are that "
        "incident (0: every alert is its own).",
    )
    change_window: Duration = Field(
        default=3600.0,
        gt=0,
        description="A rollout this long before an incident's first alert counts as the change that preceded it "
        "(steps with `when: changed`).",
    )

    def matches(self, alert: AlertFacts) -> bool:
        m = self.match
        return (
            alert.alertname in m.alertname
            and (not m.severity or alert.severity in m.severity)
            and all(matcher.matches(alert.labels) for matcher in m.labels)
            and m.namespaces.matches(alert.namespace)
        )

    def needs_approval(self, action: ActionKind) -> bool:
        return action in self.approval.required_for


class PolicyDocument(_Model):
    policies: tuple[Policy, ...] = Field(default=())

    @field_validator("policies")
    @classmethod
    def _unique(cls, value: tuple[Policy, ...]) -> tuple[Policy, ...]:
        seen: set[str] = set()
        for policy in value:
            if policy.name in seen:
                raise ValueError(f"policy name {policy.name!r} is used twice")
            seen.add(policy.name)
        return value


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What matching needs to know about an alert."""

    alertname: str
    severity: Severity
    labels: Mapping[str, str]
    namespace: str | None


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    line: int | None  # 1-based
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if self.line is not None else "document"
        return f"{where}: {self.path or '<root>'}: {self.message}"


class PolicyError(ValueError):
    """The policy document is invalid; `issues` point at the offending lines."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(str(i) for i in self.issues))


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A validated document with its version: the first matching policy wins (order is the author's)."""

    policies: tuple[Policy, ...]
    version: int
    source: str

    def match(self, alert: AlertFacts) -> Policy | None:
        return next((p for p in self.policies if p.matches(alert)), None)

    def get(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name), None)


def _node_at(root: yaml.Node | None, loc: Sequence[int | str]) -> yaml.Node | None:
    """The deepest YAML node along pydantic's error location (stops where the path leaves the document)."""
    node = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(key)), None)
            if child is None:
                return node
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def parse_policies(text: str, *, version: int = 1) -> PolicySet:
    """Validate a policy document; `PolicyError` with line numbers when it is not valid."""
    try:
        root = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise PolicyError([PolicyIssue(line, column, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if data is None:
        data = {}
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False):
            loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            node = _node_at(root, loc)
            mark = node.start_mark if node is not None else None
            msg = str(error["msg"]).removeprefix("Value error, ")
            issues.append(
                PolicyIssue(
                    mark.line + 1 if mark else None,
                    mark.column + 1 if mark else None,
                    ".".join(str(p) for p in loc),
                    msg,
                )
            )
        # A failed item also fails its container's length check: report the item, not the echo.
        paths = [i.path for i in issues]
        issues = [i for i in issues if not any(p != i.path and p.startswith(i.path + ".") for p in paths)]
        raise PolicyError(issues) from None
    return PolicySet(policies=document.policies, version=version, source=text)
