"""The informer cache: the last observed state of every watched object, as plain dicts, and the relist diff.

A watch event is applied with `Cache.apply()`, which returns the change actually made (or None when the event
repeats what the cache already holds: a reconnect replaying an object at the same resourceVersion). After a
410 Gone the informer lists again and `diff()` turns "what we had" and "what the apiserver has now" into the
ADDED / MODIFIED / DELETED changes the missed events would have carried, so nothing is missed or doubled.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from opsbus.common.events.payloads.cluster import ChangeType
from opsbus.watcher.domain.objects import Obj, key_of, resource_version, uid_of


@dataclass(frozen=True)
class Change:
    """One object change: the object's new state, or its last known state for DELETED."""

    kind: str
    type: ChangeType
    key: str
    obj: Obj
    old: Obj | None = None


def diff(kind: str, before: Mapping[str, Obj], after: Mapping[str, Obj]) -> list[Change]:
    """The changes that turn `before` into `after` (keyed by `key_of`).

    A key whose uid changed is a delete of the old object followed by an add of the new one (a pod recreated
    under the same name is a different pod); an unchanged resourceVersion is no change.
    """
    changes: list[Change] = []
    for key, old in before.items():
        new = after.get(key)
        if new is None or uid_of(new) != uid_of(old):
            changes.append(Change(kind, ChangeType.DELETED, key, old, old))
    for key, new in after.items():
        prev = before.get(key)
        if prev is None or uid_of(new) != uid_of(prev):
            changes.append(Change(kind, ChangeType.ADDED, key, new))
        elif resource_version(new) != resource_version(prev):
            changes.append(Change(kind, ChangeType.MODIFIED, key, new, prev))
    return changes


class Cache:
    """Objects by kind and key. Holds plain data only; every mutation goes through `apply`/`replace`."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Obj]] = {}

    def kind(self, kind: str) -> Mapping[str, Obj]:
        return self._objects.get(kind, {})

    def get(self, kind: str, key: str) -> Obj | None:
        return self._objects.get(kind, {}).get(key)

    def __len__(self) -> int:
        return sum(len(v) for v in self._objects.values())

    def items(self, kind: str) -> Iterator[tuple[str, Obj]]:
        return iter(list(self._objects.get(kind, {}).items()))

    def apply(self, kind: str, event_type: str, obj: Obj) -> Change | None:
        """Apply one watch event; the effective change, or None if it changes nothing."""
        objects = self._objects.setdefault(kind, {})
        key = key_of(obj)
        old = objects.get(key)
        if event_type == "DELETED":
            if old is None:
                return None
            del objects[key]
            return Change(kind, ChangeType.DELETED, key, obj, old)
        objects[key] = obj
        if old is None:
            return Change(kind, ChangeType.ADDED, key, obj)
        if uid_of(old) != uid_of(obj):
            # The DELETED of the old object was missed: report the replacement as an add (the old one's
            # alerts resolve through its key's findings changing).
            return Change(kind, ChangeType.ADDED, key, obj, old)
        if resource_version(old) == resource_version(obj):
            return None
        return Change(kind, ChangeType.MODIFIED, key, obj, old)

    def replace(self, kind: str, objects: Mapping[str, Obj], scope: str | None = None) -> list[Change]:
        """Replace the objects of `kind` (within namespace `scope`, if given) by a fresh list; the diff."""
        current = self._objects.setdefault(kind, {})
        before = {k: v for k, v in current.items() if scope is None or k.startswith(f"{scope}/")}
        changes = diff(kind, before, objects)
        for key in before:
            del current[key]
        current.update(objects)
        return changes
