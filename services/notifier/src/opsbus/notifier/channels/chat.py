"""What the Chinese workplace chat channels (DingTalk, WeCom, Feishu) share: the first links of a notification
(incident, trace) for buttons, and text cut to a provider's size limit in UTF-8 bytes without splitting a
character. Pure functions."""

from __future__ import annotations

from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.rendering import Links


def first_links(n: Notification, links: Links) -> tuple[str | None, str | None]:
    """The incident and trace links of the notification's first alert that has them."""
    incident = next((url for a in n.alerts if (url := links.incident(a))), None)
    trace = next((url for a in n.alerts if (url := links.trace(a))), None)
    return incident, trace


def fit_bytes(text: str, limit: int, marker: str = "\n…") -> str:
    """`text` cut so that its UTF-8 encoding is at most `limit` bytes, the cut marked."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    room = limit - len(marker.encode())
    return raw[:room].decode(errors="ignore") + marker


def markdown_lines(text: str) -> str:
    """Plain rendered text as markdown whose line breaks survive (a hard break at every line end)."""
    return "  \n".join(text.splitlines())
