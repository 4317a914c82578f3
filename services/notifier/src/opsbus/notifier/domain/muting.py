"""Silences and inhibition: which firing alerts must not be told, and why (pure).

A silence mutes alerts whose labels match all its matchers while `starts_at <= now < ends_at`; expiring a
silence sets `ends_at` to now. An inhibition rule mutes a *target* alert while some other firing *source*
alert matches the source matchers and has the same values for every `equal` label (a label missing on both
counts as equal, as in Alertmanager); an alert never inhibits itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from opsbus.notifier.domain.config import InhibitRule
from opsbus.notifier.domain.matchers import Matcher, matches_all


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime) -> list[Silence]:
    return [s for s in silences if s.active(now) and matches_all(s.matchers, labels)]


def inhibited_by(
    rules: Sequence[InhibitRule],
    fingerprint: str,
    labels: Mapping[str, str],
    sources: Iterable[tuple[str, Mapping[str, str]]],
) -> tuple[int, str] | None:
    """(rule index, source fingerprint) of the first rule that inhibits this alert, or None."""
    candidates = list(sources)
    for index, rule in enumerate(rules):
        if not matches_all(rule.target, labels):
            continue
        for source_fp, source_labels in candidates:
            if source_fp == fingerprint or not matches_all(rule.source, source_labels):
                continue
            if all(source_labels.get(name, "") == labels.get(name, "") for name in rule.equal):
                return index, source_fp
    return None


def mute_reasons(
    alerts: Iterable[tuple[str, Mapping[str, str]]],
    *,
    silences: Sequence[Silence],
    rules: Sequence[InhibitRule],
    sources: Sequence[tuple[str, Mapping[str, str]]],
    now: datetime,
) -> dict[str, str]:
    """fingerprint -> why it is muted, for the given firing alerts."""
    out: dict[str, str] = {}
    for fingerprint, labels in alerts:
        hit = silenced_by(silences, labels, now)
        if hit:
            out[fingerprint] = f"silenced by {hit[0].id} ({hit[0].created_by}: {hit[0].comment})"
            continue
        inhibited = inhibited_by(rules, fingerprint, labels, sources)
        if inhibited is not None:
            out[fingerprint] = f"inhibited by rule {inhibited[0]} (source alert {inhibited[1]})"
    return out
