"""Which routes an event's labels reach: Alertmanager's depth-first walk with `continue`.

A route matches when all its matchers match. Its children are tried in order; the first child that matches
stops the walk among its siblings unless it has `continue: true`. A route none of whose children match
handles the alert itself. The root matches everything. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsbus.notifier.domain.config import Route
from opsbus.notifier.domain.matchers import matches_all


def match_routes(route: Route, labels: Mapping[str, str], *, root: bool = True) -> list[Route]:
    """The routes that handle `labels`, in tree order (never empty for the root)."""
    if not root and not matches_all(route.matchers, labels):
        return []
    found: list[Route] = []
    for child in route.routes:
        matched = match_routes(child, labels, root=False)
        found.extend(matched)
        if matched and not child.continue_:
            break
    return found or [route]
