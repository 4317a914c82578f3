"""Configuration as code: the YAML tree, inheritance, and errors that name the path and the line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsbus.notifier.domain.config import ConfigError, literal_secrets, parse_config, redact_secrets
from opsbus.notifier.domain.matchers import Matcher, MatcherError
from opsbus.notifier.domain.routing import match_routes

CONFIG = """\
route:
  receiver: default
  group_by: [alertname, namespace]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_wait: 0s
      continue: true
    - matchers: ['namespace=~"pay.*"']
      receiver: payments
      repeat_interval: 1h
      routes:
        - matchers: ['event_type="recovery.escalated"']
          receiver: payments-oncall
    - matchers: ['namespace="payments"']
      receiver: never
receivers:
  - name: default
  - name: pager
    pagerduty_configs: [{routing_key: "${PD_KEY}"}]
  - name: payments
    webhook_configs: [{url: "http://127.0.0.1:9/hook", secret: s3cr3t}]
  - name: payments-oncall
  - name: never
"""


def names(labels: dict[str, str]) -> list[str]:
    config = parse_config(CONFIG, env={"PD_KEY": "k"})
    return [r.receiver for r in match_routes(config.root, labels)]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"namespace": "web", "severity": "warning"}, ["default"]),  # no child matches: the root handles it
        ({"namespace": "web", "severity": "critical"}, ["pager"]),  # continue, but no later sibling matches
        ({"namespace": "payments", "severity": "critical"}, ["pager", "payments"]),  # continue reaches the next
        ({"namespace": "payments"}, ["payments"]),  # first match stops: the third route is never reached
        ({"namespace": "payroll", "event_type": "recovery.escalated"}, ["payments-oncall"]),  # nested
        ({"namespace": "xpay"}, ["default"]),  # regexes are anchored
    ],
)
def test_routing_tree_is_walked_depth_first_with_continue(labels: dict[str, str], expected: list[str]) -> None:
    assert names(labels) == expected


def test_children_inherit_timers_and_group_by() -> None:
    config = parse_config(CONFIG, env={"PD_KEY": "k"})
    pager, payments = config.root.routes[0], config.root.routes[1]
    oncall = payments.routes[0]
    assert pager.options.group_wait == timedelta(0)
    assert payments.options.group_wait == timedelta(seconds=10)
    assert oncall.options.repeat_interval == timedelta(hours=1)
    assert oncall.options.group_by == ("alertname", "namespace")
    assert oncall.options.group_interval == timedelta(minutes=5)  # Alertmanager's default
    assert oncall.id == "0.1.0"


@pytest.mark.parametrize(
    ("text", "op", "value", "hits", "misses"),
    [
        ('severity="critical"', "=", "critical", {"severity": "critical"}, {"severity": "warning"}),
        ("team!=core", "!=", "core", {}, {"team": "core"}),
        ('alertname=~"Kube.*"', "=~", "Kube.*", {"alertname": "KubeX"}, {"alertname": "XKube"}),
        ('alertname!~"Kube.*|Node.*"', "!~", "Kube.*|Node.*", {"alertname": "OOM"}, {"alertname": "NodeDown"}),
        ('team=""', "=", "", {}, {"team": "x"}),
    ],
)
def test_matchers(text: str, op: str, value: str, hits: dict[str, str], misses: dict[str, str]) -> None:
    matcher = Matcher.parse(text)
    assert (matcher.op.value, matcher.value) == (op, value)
    assert matcher.matches(hits)
    assert not matcher.matches(misses)
    assert Matcher.parse(str(matcher)) == matcher


@pytest.mark.parametrize("text", ["severity", '1abc="x"', 'a=~"("', 'a="x'])
def test_bad_matchers_are_refused(text: str) -> None:
    with pytest.raises(MatcherError):
        Matcher.parse(text)


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "route:\n  receiver: a\n  routes:\n    - receiver: a\n      group_wait: 5x\nreceivers:\n  - name: a\n",
            "route.routes[0].group_wait (line 5): invalid duration '5x'",
        ),
        (
            "route:\n  receiver: a\n  routes:\n    - receiver: b\nreceivers:\n  - name: a\n",
            "route.routes[0].receiver (line 4): unknown receiver 'b'",
        ),
        (
            "route:\n  receiver: a\n  routes:\n    - matchers: ['sev=~\"(\"']\nreceivers:\n  - name: a\n",
            "route.routes[0].matchers (line 4): invalid regex",
        ),
        (
            "route:\n  receiver: a\nreceivers:\n  - name: a\n"
            "    webhook_configs:\n      - url: http://x\n        colour: red\n",
            "receivers[0].webhook_configs[0].colour (line 7): Extra inputs are not permitted",
        ),
        (
            "route:\n  receiver: a\nreceivers:\n  - name: a\n    pagerduty_configs: [{routing_key: '${NOPE}'}]\n",
            "environment variable NOPE is not set",
        ),
        ("route: [\n", "not valid YAML (line 2"),
    ],
)
def test_errors_name_the_yaml_path_and_line(yaml_text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml_text)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_secrets_come_from_the_environment_and_stay_secret() -> None:
    config = parse_config(CONFIG, env={"PD_KEY": "pd-routing-key"})
    pd = config.receivers["pager"].pagerduty_configs[0]
    assert pd.routing_key.get_secret_value() == "pd-routing-key"
    assert "pd-routing-key" not in repr(config.receivers["pager"])


SECRETS_YAML = """\
route:
  receiver: team
receivers:
  - name: team
    slack_configs:
      - url: https://hooks.slack.com/services/T0/B0/literalsecret
    webhook_configs:
      - url: https://hooks.example.com/${HOOK_TOKEN}
        secret: ${HOOK_SECRET}
    pagerduty_configs:
      - routing_key: r0utingkey0123
"""


def test_literal_secrets_are_named_with_path_and_line_and_references_are_not() -> None:

    assert [(i.path, i.line) for i in literal_secrets(SECRETS_YAML)] == [
        ("receivers[0].slack_configs[0].url", 6),
        ("receivers[0].pagerduty_configs[0].routing_key", 11),
    ]


def test_redaction_replaces_every_literal_secret_and_keeps_references() -> None:

    text, redacted = redact_secrets(SECRETS_YAML)
    assert redacted
    assert "literalsecret" not in text and "r0utingkey0123" not in text
    assert "${HOOK_TOKEN}" in text and "${HOOK_SECRET}" in text
    assert redact_secrets("route: [\n") == ("route: [\n", False)


def test_validation_with_an_environment_that_has_everything_reports_no_unset_variable() -> None:
    class AnyEnv(dict[str, str]):
        def __contains__(self, key: object) -> bool:
            return True

        def __getitem__(self, key: str) -> str:
            return "x"

    parse_config(SECRETS_YAML, env=AnyEnv())  # an empty mapping that answers every name is still used
    with pytest.raises(ConfigError) as caught:
        parse_config(SECRETS_YAML, env={})
    assert [i.path for i in caught.value.issues] == [
        "receivers[0].webhook_configs[0].url",
        "receivers[0].webhook_configs[0].secret",
    ]
