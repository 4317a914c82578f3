"""Policy YAML: the shipped defaults are valid, matching works, and errors point at the offending line."""

from __future__ import annotations

from importlib.resources import files

import pytest

from opsbus.common.events.payloads import ActionKind, CauseKind, Severity
from opsbus.healer.domain.policy import (
    AlertFacts,
    CauseWhen,
    PolicyError,
    VerifyCheck,
    When,
    parse_duration,
    parse_policies,
)


def defaults() -> str:
    return files("opsbus.healer.domain").joinpath("defaults.yaml").read_text()


def test_default_policies_are_valid_and_cover_the_common_faults() -> None:
    policies = parse_policies(defaults())
    names = [p.name for p in policies.policies]
    assert names == ["crashloop", "oomkilled", "node-not-ready", "image-pull", "failed-job-pods"]
    crash = policies.get("crashloop")
    assert crash is not None
    # one pod: deleted; the workload (an incident of its pods): rolled back when the top cause is a rollout (with
    # no diagnosis: after a rollout), else restarted; no notify_only at the end: a ladder that still fails
    # escalates (a notify step would "resolve" it)
    assert [(s.action, s.when) for s in crash.ladder] == [
        (ActionKind.DELETE_POD, When.ALWAYS),
        (
            ActionKind.ROLLBACK,
            CauseWhen(cause=CauseKind.ROLLOUT, min_confidence=0.6, without_diagnosis=When.CHANGED),
        ),
        (ActionKind.ROLLOUT_RESTART, When.UNCHANGED),
    ]
    assert crash.ladder[2].verify is VerifyCheck.WORKLOAD_AVAILABLE and crash.group_window == 600
    node = policies.get("node-not-ready")
    assert node is not None
    assert node.needs_approval(ActionKind.DRAIN_NODE)
    assert not node.needs_approval(ActionKind.CORDON_NODE)
    assert node.approval.expires_after == 1800


def test_first_matching_policy_wins_with_label_matchers_and_namespaces() -> None:
    text = """
policies:
  - name: payments-only
    match:
      alertname: KubePodCrashLooping
      labels: ['container=~"app|web"', 'team!=infra']
      namespaces: {include: ["pay*"], exclude: ["pay-test"]}
    ladder: [{action: notify_only}]
  - name: anything
    match: {alertname: KubePodCrashLooping, severity: critical}
    ladder: [{action: delete_pod}]
"""
    policies = parse_policies(text)

    def facts(ns: str, labels: dict[str, str], severity: Severity = Severity.CRITICAL) -> str | None:
        policy = policies.match(AlertFacts("KubePodCrashLooping", severity, labels, ns))
        return policy.name if policy else None

    assert facts("payments", {"container": "app"}) == "payments-only"
    assert facts("payments", {"container": "app", "team": "infra"}) == "anything"
    assert facts("pay-test", {"container": "app"}) == "anything"
    assert facts("payments", {"container": "sidecar"}) == "anything"
    assert facts("payments", {"container": "sidecar"}, Severity.WARNING) is None


def test_validation_error_names_the_offending_line() -> None:
    text = """policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    ladder:
      - action: delete_pod
      - action: reboot_the_world
        timeout: 2m
"""
    with pytest.raises(PolicyError) as info:
        parse_policies(text)
    (issue,) = info.value.issues
    assert issue.line == 6
    assert issue.path == "policies.0.ladder.1.action"
    assert "line 6" in str(info.value)


def test_unknown_key_and_bad_duration_are_each_located() -> None:
    text = """policies:
  - name: oom
    match: {alertname: OOMKilled}
    cooldown: soon
    ladder:
      - action: raise_memory_limit
        params: {factor: 1.5}
        verfy: alert_resolved
"""
    with pytest.raises(PolicyError) as info:
        parse_policies(text)
    lines = {(i.line, i.path.split(".")[-1]) for i in info.value.issues}
    assert (4, "cooldown") in lines
    assert any(line == 8 and "verfy" in path for line, path in lines) or (8, "verfy") in lines


def test_unbounded_memory_raise_is_refused_on_its_step_line() -> None:
    text = """policies:
  - name: oom
    match: {alertname: OOMKilled}
    ladder:
      - action: raise_memory_limit
        params: {factor: 1.5}
"""
    with pytest.raises(PolicyError) as info:
        parse_policies(text)
    (issue,) = info.value.issues
    assert issue.line == 5
    assert "ceiling_bytes" in issue.message


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policies("policies:\n  - name: x\n    match: {alertname: [A\n")
    assert info.value.issues[0].line is not None
    assert "not valid YAML" in info.value.issues[0].message


def test_duplicate_names_and_invalid_regex_are_refused() -> None:
    text = """policies:
  - {name: a, match: {alertname: X}, ladder: [{action: notify_only}]}
  - {name: a, match: {alertname: Y, labels: ['pod=~"("']}, ladder: [{action: notify_only}]}
"""
    with pytest.raises(PolicyError) as info:
        parse_policies(text)
    messages = " ".join(i.message for i in info.value.issues)
    assert "invalid regex" in messages


def test_durations_and_notify_only_verification() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("1.5h") == 5400
    assert parse_duration(30) == 30
    with pytest.raises(ValueError):
        parse_duration("-3s")
    policies = parse_policies("policies: [{name: n, match: {alertname: A}, ladder: [{action: notify_only}]}]")
    assert policies.policies[0].ladder[0].verify is VerifyCheck.NONE


def test_empty_document_is_an_empty_policy_set() -> None:
    assert parse_policies("").policies == ()


def test_a_step_conditioned_on_the_cause_is_validated_with_its_line() -> None:
    doc = """
policies:
  - name: p
    match: {alertname: A}
    ladder:
      - action: rollback
        when: {cause: rollout, wait: 30s}
      - action: rollout_restart
        when: {cause: a-guess, min_confidence: 1.5}
"""
    with pytest.raises(PolicyError) as err:
        parse_policies(doc)
    issues = {i.path: i.line for i in err.value.issues}
    assert issues == {"policies.0.ladder.1.when.cause.cause": 9, "policies.0.ladder.1.when.cause.min_confidence": 9}
    ok = parse_policies(doc.replace("a-guess, min_confidence: 1.5", "config_change"))
    p = ok.policies[0]
    assert p.ladder[0].when == CauseWhen(cause=CauseKind.ROLLOUT, min_confidence=0.5, wait=30.0)
    assert p.ladder[1].when == CauseWhen(cause=CauseKind.CONFIG_CHANGE)
