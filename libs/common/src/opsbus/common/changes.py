"""The one way opsbus's own writers (deployer, healer, optimizer) put a write of theirs on the change timeline.

Why this module exists: the analyzer explains an incident by what changed shortly before it, and an action
opsbus took (a rollout, a restart, a rollback, a resize, a cordon) is a change like any other. The watcher
observes the same write in the cluster (origin `observed`); the writer's own entry adds what the watcher
cannot know: which service (or person) wrote it, the action, and - in the envelope's `causationid` and
`correlationid` - the deploy request or alert it answers.

`written()` builds the `change.recorded` event (pure, no I/O); the caller adds it to its transactional outbox
in the same transaction as its own record of the write, so the timeline never shows a write the service did
not record, nor misses one it did. Its id derives from the service and a key naming the write (rollout and
step, recovery step, the object's resourceVersion after the write): a replayed step or a redelivered event
queues the same id, which the outbox and JetStream's duplicate window keep once.

`template_diff()` summarises a pod template change (image, command and args, env, resources per container)
in the watcher's paths, so the analyzer reads both kinds of entries alike. It never carries a whole object.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsbus.common.events.envelope import Envelope
from opsbus.common.events.payloads.change import (
    MAX_DIFF_ENTRIES,
    MAX_VALUE_CHARS,
    ChangeKind,
    ChangeOrigin,
    ChangeRecorded,
    FieldChange,
)
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef, WorkloadRef

_CHANGE_NAMESPACE = uuid.UUID("0d7f4b52-3c1e-4e8a-b6f1-8a2d9c4e7b13")
_SUMMARY_MAX = 512

Entry = tuple[ChangeKind, FieldChange]


@dataclass(frozen=True, slots=True)
class Write:
    """One write opsbus made to the cluster, as the writer knows it (an argument object: fields may be added)."""

    action: str  # e.g. `deploy`, `rollback`, `rollout_restart`, `scale`, `resize`, `cordon_node`
    object: ResourceRef
    workload: WorkloadRef | None = None
    entries: Sequence[Entry] = ()  # what changed, where known; empty means "the action, details unknown"
    detail: str = ""  # appended to the summary, e.g. `for alert KubePodCrashLooping`
    resource_version: str | None = None  # metadata.resourceVersion after the write, when known
    extra_kinds: tuple[ChangeKind, ...] = ()  # kinds the entries do not show (e.g. `replicas` for a scale)


def origin_of(service: str, actor: Actor | None) -> ChangeOrigin:
    """A person (user or API key) behind the write makes it theirs; otherwise it is the service's."""
    if actor is not None and actor.kind is not ActorKind.SERVICE:
        return ChangeOrigin.USER
    return ChangeOrigin(service)


def change_id(service: str, key: str) -> str:
    """The event id of the write named `key`: the same on every replay."""
    return str(uuid.uuid5(_CHANGE_NAMESPACE, f"{service}:{key}"))


def written(
    write: Write,
    *,
    service: str,
    cluster: str,
    key: str,
    now: datetime,
    cause: Envelope | None = None,
    actor: Actor | None = None,
) -> Envelope:
    """The `change.recorded` event for `write`, continuing `cause`'s chain (pure)."""
    actor = actor or Actor(kind=ActorKind.SERVICE, id=service)
    diffs = [entry for _, entry in write.entries]
    kinds = (ChangeKind.ACTION, *write.extra_kinds, *(k for k, _ in write.entries))
    payload = ChangeRecorded(
        kinds=tuple(dict.fromkeys(kinds))[:16],
        object=write.object,
        workload=write.workload,
        diff=tuple(diffs[:MAX_DIFF_ENTRIES]),
        diff_truncated=len(diffs) > MAX_DIFF_ENTRIES,
        summary=summary(write, diffs),
        origin=origin_of(service, actor),
        actor=actor,
        action=write.action[:128],
        observed_at=now,
        resource_version=write.resource_version,
    )
    return Envelope.build(
        payload,
        service=service,
        cluster=cluster,
        obj=write.object.as_object_ref(),
        cause=cause,
        event_id=change_id(service, key),
        time=now,
    )


# --- diffs -----------------------------------------------------------------------------------------------


def render(value: Any) -> str | None:
    """A field value as the timeline shows it: strings as they are, the rest as compact JSON, cut to fit."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "\u2026"


def entry(kind: ChangeKind, path: str, before: Any, after: Any) -> list[Entry]:
    """One diff entry, or none when the value did not change."""
    if before == after:
        return []
    return [(kind, FieldChange(path=path, before=render(before), after=render(after)))]


def template_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Entry]:
    """What changed between two pod templates (`spec.template` of a workload), per container.

    Images, command and args, env (names with their literal values or their references; no Secret value is
    ever in a template), envFrom and resources. Containers added or removed are one `template` entry each.
    """
    out: list[Entry] = []
    old_spec, new_spec = before.get("spec") or {}, after.get("spec") or {}
    for group in ("initContainers", "containers"):
        old, new = _by_name(old_spec.get(group)), _by_name(new_spec.get(group))
        for name in sorted({*old, *new}):
            path = f"spec.template.spec.{group}[{name}]"
            a, b = old.get(name), new.get(name)
            if a is None or b is None:
                image = (a or b or {}).get("image")
                out += entry(ChangeKind.TEMPLATE, path, image if a else None, image if b else None)
                continue
            out += entry(ChangeKind.IMAGE, f"{path}.image", a.get("image"), b.get("image"))
            for part, kind in (("command", ChangeKind.COMMAND), ("args", ChangeKind.COMMAND)):
                out += entry(kind, f"{path}.{part}", a.get(part) or None, b.get(part) or None)
            out += entry(ChangeKind.ENV, f"{path}.envFrom", a.get("envFrom") or None, b.get("envFrom") or None)
            old_env, new_env = _env(a), _env(b)
            for var in sorted({*old_env, *new_env}):
                out += entry(ChangeKind.ENV, f"{path}.env[{var}]", old_env.get(var), new_env.get(var))
            for part in ("requests", "limits"):
                old_q = (a.get("resources") or {}).get(part) or {}
                new_q = (b.get("resources") or {}).get(part) or {}
                for res in sorted({*old_q, *new_q}):
                    out += entry(ChangeKind.RESOURCES, f"{path}.resources.{part}.{res}", old_q.get(res), new_q.get(res))
    return out


def summary(write: Write, diffs: Sequence[FieldChange]) -> str:
    """One line: `rollout_restart Deployment shop/web: containers[app].image a -> b (+2 more); for ...`."""
    ref = write.object
    head = f"{write.action} {ref.kind} {ref.namespace + '/' if ref.namespace else ''}{ref.name}"
    parts = [_describe(d) for d in diffs]
    text = head + (": " + "; ".join(parts[:4]) if parts else "")
    text += f" (+{len(parts) - 4} more)" if len(parts) > 4 else ""
    text += f"; {write.detail}" if write.detail else ""
    return text if len(text) <= _SUMMARY_MAX else text[: _SUMMARY_MAX - 1] + "\u2026"


def _describe(d: FieldChange) -> str:
    path = d.path.removeprefix("spec.template.spec.")
    if d.before is None or d.after is None:
        return f"{path} {'added' if d.before is None else 'removed'}"
    return f"{path} {short(d.before)} -> {short(d.after)}"


def short(value: str) -> str:
    """A value cut to 60 characters for a one-line summary."""
    return value if len(value) <= 60 else value[:59] + "\u2026"


def _by_name(items: Any) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("name")): c for c in items or [] if isinstance(c, Mapping)}


def _env(container: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(e.get("name")): e.get("value") if "value" in e else e.get("valueFrom")
        for e in container.get("env") or []
        if isinstance(e, Mapping)
    }


__all__ = [
    "Entry",
    "Write",
    "change_id",
    "entry",
    "origin_of",
    "render",
    "short",
    "summary",
    "template_diff",
    "written",
]
