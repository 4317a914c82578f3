"""Silences, inhibition, the retry schedule with Retry-After, the token bucket and the webhook signature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsbus.notifier.domain.config import parse_config
from opsbus.notifier.domain.delivery import (
    Bucket,
    RetryPolicy,
    TokenBucket,
    next_delay,
    parse_retry_after,
    sign,
    take_token,
    verify,
)
from opsbus.notifier.domain.matchers import parse_all
from opsbus.notifier.domain.muting import Silence, inhibited_by, mute_reasons, silenced_by
from opsbus.notifier.domain.notices import Notice

RULES = parse_config(
    """
route: {receiver: r}
receivers: [{name: r}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [namespace, alertname]
"""
).inhibit_rules

T0 = datetime(2025, 3, 14, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def notice(fp: str, status: str = "firing", *, ephemeral: bool = False, **labels: str) -> Notice:
    base = {"alertname": "KubePodCrashLooping", "cluster": "prod", "namespace": "payments", "event_type": "alert"}
    return Notice(
        fingerprint=fp,
        status=status,
        ephemeral=ephemeral,
        labels={**base, **labels},
        title=f"alert {fp}",
        event_id=f"ev-{fp}-{status}",
        event_type="io.opsbus.alert.fired.v1",
        subject="Pod/payments/checkout-1",
        starts_at=T0,
    )


def test_silence_mutes_only_while_active_and_only_matching_alerts() -> None:
    s = Silence("s1", parse_all(['namespace="payments"', 'alertname=~"Kube.*"']), at(0), at(3600), "alice", "deploy")
    labels = {"namespace": "payments", "alertname": "KubePodCrashLooping"}
    assert silenced_by([s], labels, at(10)) == [s]
    assert silenced_by([s], labels, at(3600)) == []  # ends_at is exclusive: expired
    assert silenced_by([s], labels, at(-1)) == []  # pending
    assert silenced_by([s], {**labels, "namespace": "web"}, at(10)) == []
    assert s.state(at(-1)) == "pending" and s.state(at(1)) == "active" and s.state(at(4000)) == "expired"


@pytest.mark.parametrize(
    ("source", "target", "inhibited"),
    [
        (
            {"severity": "critical", "namespace": "a", "alertname": "X"},
            {"severity": "warning", "namespace": "a", "alertname": "X"},
            True,
        ),
        # equal labels differ: no inhibition
        (
            {"severity": "critical", "namespace": "b", "alertname": "X"},
            {"severity": "warning", "namespace": "a", "alertname": "X"},
            False,
        ),
        # equal label missing on both counts as equal
        ({"severity": "critical", "alertname": "X"}, {"severity": "warning", "alertname": "X"}, True),
        # target does not match target matchers
        (
            {"severity": "critical", "namespace": "a", "alertname": "X"},
            {"severity": "info", "namespace": "a", "alertname": "X"},
            False,
        ),
    ],
)
def test_inhibition_needs_the_equal_labels(source: dict[str, str], target: dict[str, str], inhibited: bool) -> None:
    assert (inhibited_by(RULES, "t", target, [("s", source)]) is not None) is inhibited


def test_an_alert_never_inhibits_itself() -> None:
    both = {"severity": "warning", "namespace": "a", "alertname": "X"}
    rules = parse_config(
        "route: {receiver: r}\nreceivers: [{name: r}]\ninhibit_rules:\n"
        "  - {source_matchers: ['alertname=\"X\"'], target_matchers: ['alertname=\"X\"']}\n"
    ).inhibit_rules
    assert inhibited_by(rules, "same", both, [("same", both)]) is None


def test_mute_reasons_say_why() -> None:
    s = Silence("s1", parse_all(['alertname="X"']), at(0), at(60), "alice", "maintenance")
    reasons = mute_reasons([("f", {"alertname": "X"})], silences=[s], rules=(), sources=[], now=at(1))
    assert reasons == {"f": "silenced by s1 (alice: maintenance)"}


def test_retry_schedule_is_exponential_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=1.0, max_seconds=10.0, max_retry_after=600.0)
    top = [next_delay(policy, n, rand=lambda: 1.0) for n in range(1, 6)]
    low = [next_delay(policy, n, rand=lambda: 0.0) for n in range(1, 5)]
    assert top == [1.0, 2.0, 4.0, 8.0, None]  # capped attempts: the 5th failure is final
    assert low == [0.5, 1.0, 2.0, 4.0]  # jitter takes up to half off
    assert next_delay(policy, 1, retry_after=30.0, rand=lambda: 0.0) == 30.0  # never earlier than asked
    assert next_delay(policy, 1, retry_after=700.0, rand=lambda: 0.5) is None  # beyond any useful wait
    assert next_delay(policy, 4, retry_after=20.0, rand=lambda: 1.0) == pytest.approx(20.8)


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("7", 0) == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None


def test_token_bucket() -> None:
    bucket = TokenBucket(per_second=2.0, burst=2, now=0.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


def test_signature_is_hmac_of_timestamp_dot_body_and_rejects_replays() -> None:
    body = b'{"a":1}'
    signature = sign(b"k", 1700000000, body)
    # reference: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac k
    assert signature == "sha256=" + __import__("hmac").new(b"k", b'1700000000.{"a":1}', "sha256").hexdigest()
    assert verify(b"k", "1700000000", body, signature, now=1700000100)
    assert not verify(b"k", "1700000000", body, signature, now=1700000400)  # too old: replay
    assert not verify(b"k", "1700000000", b'{"a":2}', signature, now=1700000000)
    assert not verify(b"other", "1700000000", body, signature, now=1700000000)


def test_take_token_starts_full_refills_at_the_rate_and_never_goes_back_in_time() -> None:

    state, wait = take_token(None, per_second=2.0, burst=2, now=100.0)
    assert (state, wait) == (Bucket(1.0, 100.0), 0.0)
    state, wait = take_token(state, per_second=2.0, burst=2, now=100.0)
    assert (state, wait) == (Bucket(0.0, 100.0), 0.0)
    state, wait = take_token(state, per_second=2.0, burst=2, now=100.25)
    assert state == Bucket(0.5, 100.25) and wait == pytest.approx(0.25)
    # another replica's clock a little behind: no refill, no negative tokens, time stays put
    behind, wait = take_token(state, per_second=2.0, burst=2, now=99.0)
    assert behind == Bucket(0.5, 100.25) and wait == pytest.approx(0.25)
    full, wait = take_token(state, per_second=2.0, burst=2, now=1000.0)
    assert full == Bucket(1.0, 1000.0) and wait == 0.0  # refilled to the burst, not beyond
