"""What a notification says, per channel: Jinja2 templates with defaults an on-call engineer can act on.

Every message carries the alert's title and reason, the evidence (last log lines, Kubernetes Events), what the
healer did, and links: the incident in the gateway (`<gateway>/v1/incidents/<correlation id>`) and the trace
in Jaeger (`<jaeger>/trace/<trace id>` from the event's traceparent). The channel bodies are built here as
plain data (JSON-able dicts, an email message), so their shape is unit-tested; the channels only send them.
Slack and Teams get mrkdwn/markdown text.

A receiver may replace the title and text with its own templates (`templates: {title, text}` in the YAML),
rendered in Jinja2's immutable sandbox with these variables:

* `n`: the notification: `n.status` (firing|resolved), `n.receiver`, `n.group_labels`, `n.common_labels`,
  `n.repeat`, `n.alerts` (each: `status`, `title`, `reason`, `description`, `severity`, `subject`, `labels`,
  `starts_at`, `log_lines`, `kube_events`, `actions`, `runbook_url`, `event_type`, `correlationid`);
* `firing`: the alerts still firing; `links(a)`: `{"incident": url, "trace": url}` for an alert;
* `fence`: "```" for chat channels, "" for email.

Syntax errors are refused when the configuration is loaded (`parse_config`). A template that fails while
rendering (an unknown name, a sandbox violation) does not lose the message: the default template is used for
that message, and the failure is logged and counted (`template_failures`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import jinja2

from opsbus.common.api.chat import ACTION_APPROVE, ACTION_REJECT, step_value
from opsbus.notifier.domain.config import TEMPLATE_ENV, TemplatesConfig
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.notices import ApprovalAsk, Notice

log = logging.getLogger(__name__)

TITLE = (
    "[{{ n.status | upper }}{% if n.status == 'firing' %}:{{ firing | length }}{% endif %}] "
    "{{ n.group_labels.get('alertname') or n.alerts[0].labels.get('alertname', 'opsbus') }}"
    "{% for k, v in n.group_labels.items() if k != 'alertname' %} {{ k }}={{ v }}{% endfor %}"
)

TEXT = """\
{% for a in n.alerts -%}
{{ '🔥' if a.status == 'firing' else '✅' }} {{ a.title }}{% if a.status == 'resolved' %} (resolved){% endif %}
{% if a.reason %}Reason: {{ a.reason }}
{% endif %}{% if a.description %}{{ a.description }}
{% endif %}Object: {{ a.subject }} · severity {{ a.severity }} · since {{ a.starts_at.isoformat() }}
{% if a.log_lines %}Last log lines:
{{ fence }}
{% for line in a.log_lines %}{{ line }}
{% endfor %}{{ fence }}
{% endif %}{% if a.kube_events %}Kubernetes events:
{% for e in a.kube_events %}- {{ e }}
{% endfor %}{% endif %}{% if a.cause_evidence %}Evidence:
{% for e in a.cause_evidence %}- {{ e }}
{% endfor %}{% endif %}{% if a.actions %}What the healer did:
{% for s in a.actions %}- {{ s }}
{% endfor %}{% endif %}{% set l = links(a) %}{% if l.incident %}Incident: {{ l.incident }}
{% endif %}{% if l.trace %}Trace: {{ l.trace }}
{% endif %}{% if a.runbook_url %}Runbook: {{ a.runbook_url }}
{% endif %}
{% endfor %}"""


# The same defaults in Simplified Chinese, for receivers with `language: zh-CN` (labels and values stay as sent).
TITLE_ZH = (
    "[{{ '告警' if n.status == 'firing' else '已恢复' }}"
    "{% if n.status == 'firing' %}:{{ firing | length }}{% endif %}] "
    "{{ n.group_labels.get('alertname') or n.alerts[0].labels.get('alertname', 'opsbus') }}"
    "{% for k, v in n.group_labels.items() if k != 'alertname' %} {{ k }}={{ v }}{% endfor %}"
)

TEXT_ZH = """\
{% for a in n.alerts -%}
{{ '🔥' if a.status == 'firing' else '✅' }} {{ a.title }}{% if a.status == 'resolved' %}（已恢复）{% endif %}
{% if a.reason %}原因：{{ a.reason }}
{% endif %}{% if a.description %}{{ a.description }}
{% endif %}对象：{{ a.subject }} · 级别 {{ a.severity }} · 开始于 {{ a.starts_at.isoformat() }}
{% if a.log_lines %}最近日志：
{{ fence }}
{% for line in a.log_lines %}{{ line }}
{% endfor %}{{ fence }}
{% endif %}{% if a.kube_events %}Kubernetes 事件：
{% for e in a.kube_events %}- {{ e }}
{% endfor %}{% endif %}{% if a.cause_evidence %}证据：
{% for e in a.cause_evidence %}- {{ e }}
{% endfor %}{% endif %}{% if a.actions %}自愈操作：
{% for s in a.actions %}- {{ s }}
{% endfor %}{% endif %}{% set l = links(a) %}{% if l.incident %}事件详情：{{ l.incident }}
{% endif %}{% if l.trace %}调用链：{{ l.trace }}
{% endif %}{% if a.runbook_url %}处理手册：{{ a.runbook_url }}
{% endif %}
{% endfor %}"""  # noqa: RUF001  (Chinese punctuation is full width)

DEFAULTS = {"en": (TITLE, TEXT), "zh-CN": (TITLE_ZH, TEXT_ZH)}
# Words the channels put around the rendered text (buttons, card headers), per language.
WORDS = {
    "en": {"incident": "Open the incident", "trace": "Open the trace", "firing": "Firing", "resolved": "Resolved"},
    "zh-CN": {"incident": "查看事件", "trace": "查看调用链", "firing": "告警中", "resolved": "已恢复"},
}


@dataclass(frozen=True, slots=True)
class Links:
    gateway_url: str | None = None
    jaeger_url: str | None = None

    def incident(self, notice: Notice) -> str | None:
        ref = notice.correlationid or notice.event_id
        return f"{self.gateway_url.rstrip('/')}/v1/incidents/{ref}" if self.gateway_url else None

    def trace(self, notice: Notice) -> str | None:
        if not self.jaeger_url or not notice.traceparent:
            return None
        return f"{self.jaeger_url.rstrip('/')}/trace/{notice.traceparent.split('-')[1]}"


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    text: str


@functools.cache
def _compiled(source: str) -> jinja2.Template:
    """The default templates, compiled once per process (every receiver shares them)."""
    return TEMPLATE_ENV.from_string(source)


class Renderer:
    """Renders title and text; `templates` (a receiver's own) replace the defaults, which stay the fallback."""

    def __init__(self, links: Links, templates: TemplatesConfig | None = None, language: str = "en") -> None:
        title, text = DEFAULTS.get(language, DEFAULTS["en"])
        self._default = (_compiled(title), _compiled(text))
        custom = templates or TemplatesConfig()
        self._title = TEMPLATE_ENV.from_string(custom.title) if custom.title else self._default[0]
        self._text = TEMPLATE_ENV.from_string(custom.text) if custom.text else self._default[1]
        self.links = links
        self.language = language if language in DEFAULTS else "en"
        self.words = WORDS[self.language]
        self.template_failures = 0

    def for_receiver(self, templates: TemplatesConfig | None, language: str = "en") -> Renderer:
        """A renderer with the same links and a receiver's own templates and language."""
        return Renderer(self.links, templates, language) if templates or language != self.language else self

    def _context(self, n: Notification, fence: str) -> dict[str, Any]:
        def links(a: Notice) -> dict[str, str | None]:
            return {"incident": self.links.incident(a), "trace": self.links.trace(a)}

        firing = [a for a in n.alerts if a.status == "firing"]
        return {"n": n, "firing": firing, "links": links, "fence": fence}

    def render(self, n: Notification, *, fence: str = "```") -> Rendered:
        context = self._context(n, fence)
        title = self._render(self._title, self._default[0], context, n, "title")
        text = self._render(self._text, self._default[1], context, n, "text")
        return Rendered(title=title.strip(), text=text.strip())

    def _render(
        self, template: jinja2.Template, default: jinja2.Template, context: dict[str, Any], n: Notification, name: str
    ) -> str:
        try:
            return template.render(context)
        except jinja2.TemplateError as exc:  # includes SecurityError (sandbox) and UndefinedError
            if template is default:
                raise
            self.template_failures += 1
            log.warning(
                "receiver %s: its %s template failed (%s: %s); the default was used for notification %s",
                n.receiver,
                name,
                type(exc).__name__,
                exc,
                n.id,
            )
            return default.render(context)


def _alert_json(a: Notice, links: Links) -> dict[str, Any]:
    return {
        "status": a.status,
        "fingerprint": a.fingerprint,
        "labels": a.labels,
        "title": a.title,
        "reason": a.reason,
        "description": a.description,
        "severity": a.severity,
        "startsAt": a.starts_at.isoformat(),
        "endsAt": a.ends_at.isoformat() if a.ends_at else None,
        "subject": a.subject,
        "eventId": a.event_id,
        "eventType": a.event_type,
        "correlationId": a.correlationid,
        "evidence": {"logLines": a.log_lines, "kubeEvents": a.kube_events, "cause": a.cause_evidence},
        "actions": a.actions,
        "links": {"incident": links.incident(a), "trace": links.trace(a), "runbook": a.runbook_url},
    }


def webhook_body(n: Notification, rendered: Rendered, links: Links) -> dict[str, Any]:
    """Alertmanager's webhook shape (version 4) plus opsbus fields: ids, title, text and evidence."""
    return {
        "version": "4",
        "notificationId": n.id,
        "sequence": n.seq,
        "groupKey": n.group_key,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": dict(n.group_labels),
        "commonLabels": dict(n.common_labels),
        "repeat": n.repeat,
        "title": rendered.title,
        "text": rendered.text,
        "alerts": [_alert_json(a, links) for a in n.alerts],
    }


def _decision_buttons(ask: ApprovalAsk) -> dict[str, Any]:
    """Approve and Reject for a step waiting for a person; the clicks go to the gateway's Slack endpoint."""
    value = step_value(ask.recovery_id, ask.step)
    until = ask.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    confirm = {
        "title": {"type": "plain_text", "text": "Approve this step?"},
        "text": {"type": "mrkdwn", "text": f"Step {ask.step} of recovery `{ask.recovery_id}` runs once approved."},
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    approve = {"type": "plain_text", "text": f"Approve (until {until})"[:75]}
    reject = {"type": "plain_text", "text": "Reject"}
    return {
        "type": "actions",
        "block_id": f"opsbus-decision-{value}"[:255],
        "elements": [
            {"type": "button", "action_id": ACTION_APPROVE, "text": approve, "style": "primary", "value": value}
            | {"confirm": confirm},
            {"type": "button", "action_id": ACTION_REJECT, "text": reject, "style": "danger", "value": value},
        ],
    }


def slack_body(
    n: Notification, rendered: Rendered, links: Links, *, channel: str | None = None, username: str | None = None
) -> dict[str, Any]:
    """Block Kit: a header, one section per alert (mrkdwn, under Slack's 3000-character limit), link buttons, and
    Approve/Reject buttons on a step waiting for approval (`opsbus.common.api.chat`; Slack posts the click to
    the gateway's `/v1/integrations/slack/interactions`)."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": rendered.title[:150]}}]
    for a in n.alerts[:20]:
        body = f"*{'🔥' if a.status == 'firing' else '✅'} {a.title}*\n*Severity:* {a.severity}"
        if a.reason:
            body += f"\n*Reason:* {a.reason}"
        if a.log_lines:
            body += "\n*Last log lines:*\n```" + "\n".join(a.log_lines[-10:]) + "```"
        if a.cause_evidence:
            body += "\n*Evidence:* " + "; ".join(a.cause_evidence[:5])
        if a.actions:
            body += "\n*Healer:* " + "; ".join(a.actions)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}})
        buttons = [
            {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
            for label, url in (("Incident", links.incident(a)), ("Trace", links.trace(a)), ("Runbook", a.runbook_url))
            if url
        ]
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        if a.approval is not None and a.status == "firing":
            blocks.append(_decision_buttons(a.approval))
    message: dict[str, Any] = {"text": rendered.title, "blocks": blocks}
    if channel:
        message["channel"] = channel
    if username:
        message["username"] = username
    return message


def teams_body(n: Notification, rendered: Rendered, links: Links) -> dict[str, Any]:
    """An Adaptive Card in the message envelope Teams incoming webhooks and Workflows accept."""
    facts = [{"title": k, "value": v} for k, v in n.common_labels.items()]
    items: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "text": rendered.title, "wrap": True},
        {"type": "FactSet", "facts": facts},
        {"type": "TextBlock", "text": rendered.text, "wrap": True, "fontType": "Monospace"},
    ]
    first = n.alerts[0]
    actions = [
        {"type": "Action.OpenUrl", "title": label, "url": url}
        for label, url in (("Incident", links.incident(first)), ("Trace", links.trace(first)))
        if url
    ]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": items,
        "actions": actions,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info", "error": "error"}


def pagerduty_body(
    n: Notification, rendered: Rendered, links: Links, *, routing_key: str, severity: str | None = None
) -> dict[str, Any]:
    """Events API v2: trigger while anything fires, resolve when all resolved; dedup_key is the group key."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if n.status == "firing" else "resolve",
        "dedup_key": n.group_key[:255],
    }
    if n.status == "firing":
        first = n.alerts[0]
        body["payload"] = {
            "summary": rendered.title[:1024],
            "source": n.common_labels.get("cluster", "opsbus"),
            "severity": _PD_SEVERITY.get(severity or first.severity, "error"),
            "component": n.common_labels.get("workload") or n.common_labels.get("pod"),
            "group": n.common_labels.get("namespace"),
            "class": n.common_labels.get("alertname"),
            "custom_details": {"text": rendered.text[:8000], "labels": dict(n.common_labels)},
        }
        body["links"] = [
            {"href": url, "text": label}
            for label, url in (("Incident", links.incident(first)), ("Trace", links.trace(first)))
            if url
        ]
    return body


def email_message(
    n: Notification, rendered: Rendered, *, sender: str, to: list[str], headers: Mapping[str, str] | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.title
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["X-Opsbus-Notification-Id"] = n.id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(rendered.text)
    return message
