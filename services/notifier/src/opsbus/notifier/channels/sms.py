"""What an SMS says: short by design. Severity, what, where and a link, in the receiver's language; the parts are
also given separately for providers that fill an approved template (Alibaba Cloud). Pure functions."""

from __future__ import annotations

from opsbus.notifier.channels.chat import first_links
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.rendering import Links

TEXT_LIMIT = 300  # characters: two concatenated SMS segments in GSM-7 would be 306, in UCS-2 (Chinese) 134
VARIABLE_LIMIT = 35  # Alibaba Cloud's limit for a template variable (a link variable may be longer)


def parts(n: Notification, links: Links, language: str) -> dict[str, str]:
    """`status`, `severity`, `alert`, `where` and `link` of a notification."""
    lead = n.alerts[0]
    firing = n.status == "firing"
    status = ("告警" if firing else "已恢复") if language == "zh-CN" else ("FIRING" if firing else "RESOLVED")
    where = lead.subject.split("/", 1)[-1] if lead.subject else n.group_labels.get("namespace", "")
    more = len(n.alerts) - 1
    alert = lead.labels.get("alertname") or lead.title
    if more:
        alert += f" +{more}"
    incident, _ = first_links(n, links)
    return {
        "status": status,
        "severity": lead.severity or "",
        "alert": alert,
        "where": where,
        "link": incident or "",
    }


def text(n: Notification, links: Links, language: str) -> str:
    p = parts(n, links, language)
    body = f"[{p['status']}] {p['severity']} {p['alert']} {p['where']}".replace("  ", " ").strip()
    return (body[: TEXT_LIMIT - len(p["link"]) - 1] + " " + p["link"]).strip()


def template_params(n: Notification, links: Links, language: str) -> dict[str, str]:
    """The parts cut to a template variable's limit (the link whole: it must stay usable)."""
    return {k: (v if k == "link" else v[:VARIABLE_LIMIT]) for k, v in parts(n, links, language).items()}
