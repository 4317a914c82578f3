"""Alertmanager label matchers: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.

Regexes are fully anchored, as in Alertmanager (`alertname=~"Kube.*"` matches `KubePodCrashLooping`, not
`XKube`). A label that is absent matches as the empty string, so `team!="x"` matches alerts without `team`
and `team=""` matches only those. Parsing errors name the offending text; this module does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


class MatcherError(ValueError):
    """A matcher string that is not `name<op>value` with a valid label name and regex."""


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, name: str, op: MatchOp, value: str) -> Matcher:
        if not _LABEL.match(name):
            raise MatcherError(f"invalid label name {name!r}: use [a-zA-Z_][a-zA-Z0-9_]*")
        regex = None
        if op in (MatchOp.RE, MatchOp.NRE):
            try:
                regex = re.compile(f"^(?:{value})$")
            except re.error as exc:
                raise MatcherError(f"invalid regex {value!r} for label {name!r}: {exc}") from exc
        return cls(name, op, value, regex)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """`severity="critical"`, `alertname=~"Kube.*"`; the value may also be unquoted (`team=payments`)."""
        found = _MATCHER.match(text)
        if not found:
            raise MatcherError(f"matcher {text!r} is not of the form name=value, name!=value, name=~re or name!~re")
        name, op, raw = found.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif '"' in raw:
            raise MatcherError(f"matcher {text!r} has an unbalanced quote in its value")
        else:
            value = raw
        return cls.build(name, MatchOp(op), value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return value == self.value
        if self.op is MatchOp.NE:
            return value != self.value
        assert self._regex is not None  # built by build()
        hit = self._regex.match(value) is not None
        return hit if self.op is MatchOp.RE else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op.value}"{escaped}"'


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def parse_all(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(t) for t in texts)
