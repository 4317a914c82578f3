"""The NATS permission model and its generator (pure; the proof against a real server is in
tests/deploy/test_nats_permissions.py)."""

from __future__ import annotations

import pytest

from opsbus.common import rpc
from opsbus.common.bus import permissions as perms
from opsbus.common.events.catalog import FAMILIES


def test_the_rpc_prefix_is_the_one_rpc_uses() -> None:
    assert perms.RPC_PREFIX == rpc.SUBJECT_PREFIX
    assert rpc.endpoint_subject("healer", "approve").startswith(f"{perms.RPC_PREFIX}.healer.")


@pytest.mark.parametrize("service", perms.SERVICES)
def test_a_service_publishes_exactly_the_verbs_the_catalogue_gives_it(service: str) -> None:
    allowed = set(perms.permissions_for(perms.role(service)).publish)
    for fam in FAMILIES:
        for verb in fam.verbs:
            assert (f"{fam.name}.{verb}.>" in allowed) == (service in fam.producers_of(verb)), (service, fam, verb)


def test_only_the_gateway_approves_and_only_requesters_request_deploys() -> None:
    by_service = {p.service: set(p.publish) for p in perms.all_permissions()}
    assert {s for s, pub in by_service.items() if "recovery.approved.>" in pub} == {"gateway"}
    assert {s for s, pub in by_service.items() if "deploy.requested.>" in pub} == {"gateway", "healer"}


def test_no_user_may_delete_or_purge_streams_or_use_the_whole_api() -> None:
    for p in perms.all_permissions():
        for subject in p.publish:
            assert not subject.startswith(("$JS.API.STREAM.DELETE", "$JS.API.STREAM.PURGE")), (p.service, subject)
            assert subject not in (">", "$JS.API.>", "$JS.>"), (p.service, subject)
        assert p.subscribe[0] == perms.INBOX


def test_durable_grants_name_the_consumer() -> None:
    healer = perms.permissions_for(perms.role("healer"), "east")
    assert "$JS.API.CONSUMER.MSG.NEXT.ALERT.healer-alerts-east" in healer.publish
    assert "$JS.ACK.ALERT.healer-alerts-east.>" in healer.publish
    assert not any("healer-alerts-west" in s for s in healer.publish)  # another cluster's consumer
    # Only the info of the old, cluster-less consumer, to start where it had got to (`bus.clusters`).
    assert [s for s in healer.publish if s.endswith(".ALERT.healer-alerts")] == [
        "$JS.API.CONSUMER.INFO.ALERT.healer-alerts"
    ]
    assert "dlq.alert.fired.>" in healer.publish
    assert not any(s.endswith("notifier-alert") for s in healer.publish)


def test_the_generated_block_is_stable() -> None:
    text = perms.nats_conf()
    assert text == perms.nats_conf()
    for service in perms.SERVICES:
        assert f'user: "opsbus-{service}"' in text
        assert f"password: ${perms.password_variable(service)}" in text


def test_credentials_nkey_then_literal_password_then_variable() -> None:
    text = perms.nats_conf(nkeys={"watcher": "UABC"}, passwords={"healer": "pw"})
    assert 'nkey: "UABC"' in text and 'user: "opsbus-watcher"' not in text
    assert 'password: "pw"' in text
    assert "password: $OPSBUS_NATS_PASSWORD_NOTIFIER" in text


def test_the_command_prints_both_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert perms.main(["--format", "helm-values"]) == 0
    out = capsys.readouterr().out
    assert "      watcher: opsbus-watcher\n" in out
    assert perms.main(["--nkey", "deployer=UXYZ"]) == 0
    assert 'nkey: "UXYZ"' in capsys.readouterr().out


def test_a_bad_nkey_argument_is_refused_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        perms.main(["--nkey", "nobody=UXYZ"])
    assert "expected SERVICE=U..." in capsys.readouterr().err
