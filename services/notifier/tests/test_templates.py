"""Per-receiver templates: Jinja2 in the immutable sandbox, syntax checked when the YAML loads (line in the
template and in the YAML), the defaults kept when a receiver has none, and a template failing at render time
(unknown name, sandbox violation) falls back to the default for that message instead of losing it."""

from __future__ import annotations

import logging

import pytest

from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired
from opsbus.notifier.domain.config import ConfigError, TemplatesConfig, parse_config
from opsbus.notifier.domain.grouping import Notification, notification_id
from opsbus.notifier.domain.notices import notice_from
from opsbus.notifier.rendering import Links, Renderer

LINKS = Links(gateway_url="https://opsbus.example.com", jaeger_url=None)


def notification() -> Notification:
    notice = notice_from(example_events()[AlertFired.event_type])
    assert notice is not None
    key = '0:{alertname="KubePodCrashLooping"}'
    return Notification(
        id=notification_id(key, "e0", 1),
        group_key=key,
        epoch="e0",
        seq=1,
        receiver="payments",
        status="firing",
        group_labels={"alertname": "KubePodCrashLooping"},
        common_labels={"namespace": "payments"},
        alerts=(notice,),
        repeat=False,
    )


def config_with(templates: str) -> str:
    return f"""\
route:
  receiver: payments
receivers:
  - name: payments
    templates:
{templates}
    webhook_configs:
      - url: http://127.0.0.1:9/hook
"""


def test_a_receivers_templates_replace_title_and_text() -> None:
    config = parse_config(
        config_with(
            "      title: '{{ n.common_labels.namespace }}: {{ firing | length }} firing'\n"
            "      text: |\n"
            "        {% for a in n.alerts %}{{ a.title }} because {{ a.reason }} -> {{ links(a).incident }}\n"
            "        {% endfor %}"
        )
    )
    renderer = Renderer(LINKS).for_receiver(config.receivers["payments"].templates)
    n = notification()
    rendered = renderer.render(n)
    assert rendered.title == "payments: 1 firing"
    assert rendered.text == (
        f"{n.alerts[0].title} because CrashLoopBackOff -> https://opsbus.example.com/v1/incidents/"
        f"{n.alerts[0].correlationid}"
    )


def test_without_templates_the_defaults_carry_reason_and_evidence() -> None:
    rendered = Renderer(LINKS).for_receiver(None).render(notification())
    assert rendered.title.startswith("[FIRING:1] KubePodCrashLooping")
    assert "Reason: CrashLoopBackOff" in rendered.text
    assert "STRIPE_API_BASE is not set" in rendered.text


def test_only_the_title_given_keeps_the_default_text() -> None:
    rendered = Renderer(LINKS, TemplatesConfig(title="custom")).render(notification())
    assert rendered.title == "custom" and "Reason: CrashLoopBackOff" in rendered.text


@pytest.mark.parametrize(
    ("templates", "expected"),
    [
        (
            "      title: '{{ n.status '\n",
            "receivers[0].templates.title (line 6): invalid template (template line 1, YAML line 6): "
            "unexpected end of template, expected 'end of print statement'.",
        ),
        (
            "      text: |\n        first line\n        {% for a in n.alerts %}\n        {{ a.title }\n",
            "receivers[0].templates.text (line 6): invalid template (template line 3, YAML line 9): unexpected '}'",
        ),
        (
            "      text: '{% if n.repeat %}again'\n",
            "receivers[0].templates.text (line 6): invalid template (template line 1, YAML line 6): "
            "Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The "
            "innermost block that needs to be closed is 'if'.",
        ),
    ],
)
def test_template_syntax_errors_name_the_template_line_and_the_yaml_line(templates: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(templates))
    assert caught.value.problems == (expected,)


@pytest.mark.parametrize(
    "title",
    [
        "{{ n.__class__.__mro__ }}",  # attribute tricks: refused by the sandbox
        "{{ n.alerts.append(1) }}",  # mutation: refused by the immutable sandbox
        "{{ no_such_name }}",  # unknown names: StrictUndefined
        "{{ ''.__class__.__subclasses__() }}",
    ],
)
def test_a_template_failing_at_render_time_falls_back_to_the_default(
    title: str, caplog: pytest.LogCaptureFixture
) -> None:
    renderer = Renderer(LINKS, TemplatesConfig(title=title))
    with caplog.at_level(logging.WARNING, logger="opsbus.notifier.rendering"):
        rendered = renderer.render(notification())
    assert rendered.title.startswith("[FIRING:1] KubePodCrashLooping")  # the default, nothing leaked
    assert "class" not in rendered.title
    assert renderer.template_failures == 1
    assert "receiver payments: its title template failed" in caplog.text
