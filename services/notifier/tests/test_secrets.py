"""Secret references in the configuration (`secretKeyRef`, `secretRef`), the key ring that encrypts stored secrets,
and the settings that hold its keys. Pure: no cluster, no database."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from opsbus.notifier.domain.config import ConfigError, literal_secrets, parse_config, redact_secrets, secret_references
from opsbus.notifier.domain.secrets import (
    Resolved,
    SecretKeyRef,
    StoredSecretRef,
    Unresolved,
    parse_reference,
    value_text,
)
from opsbus.notifier.secretstore import Keyring, key_id
from opsbus.notifier.settings import EXAMPLE_SECRETS_KEY, NotifierSettings

REFERENCES = """\
route:
  receiver: team
receivers:
  - name: team
    webhook_configs:
      - url: {secretRef: team-hook}
        secret: {secretKeyRef: {name: hooks, key: hmac}}
  - name: pager
    pagerduty_configs:
      - routing_key: {secretKeyRef: {name: pd, key: routing-key, namespace: payments}}
    slack_configs:
      - url: ${SLACK_URL}
"""
TEAM, HMAC, PD = (
    StoredSecretRef("team-hook"),
    SecretKeyRef("hooks", "hmac"),
    SecretKeyRef("pd", "routing-key", "payments"),
)


def test_references_are_named_for_the_adapters_and_resolved_into_the_integrations() -> None:
    assert secret_references(REFERENCES) == {TEAM, HMAC, PD}
    values: Resolved = {TEAM: "https://hooks.example.com/t", HMAC: "signing-key", PD: "pd-key"}
    config = parse_config(REFERENCES, env={"SLACK_URL": "https://slack.example.com/x"}, secrets=values)
    hook = config.receivers["team"].webhook_configs[0]
    assert hook.url.get_secret_value() == "https://hooks.example.com/t"
    assert hook.secret is not None and hook.secret.get_secret_value() == "signing-key"
    assert config.receivers["pager"].pagerduty_configs[0].routing_key.get_secret_value() == "pd-key"


def test_an_unresolved_reference_is_a_problem_with_its_yaml_path_and_the_reason_never_a_value() -> None:
    values: Resolved = {TEAM: Unresolved("stored receiver secret 'team-hook' does not exist"), HMAC: "k", PD: "p"}
    with pytest.raises(ConfigError) as refused:
        parse_config(REFERENCES, env={"SLACK_URL": "u"}, secrets=values)
    assert refused.value.problems == (
        "receivers[0].webhook_configs[0].url (line 6): stored receiver secret 'team-hook' does not exist",
    )
    with pytest.raises(ConfigError) as not_looked_up:  # a caller that fetched nothing hears which were needed
        parse_config(REFERENCES, env={"SLACK_URL": "u"})
    assert len(not_looked_up.value.problems) == 3
    assert "key 'routing-key' of Secret payments/pd was not looked up" in not_looked_up.value.problems[2]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"secretRef": "Team Hook"}, "secretRef must name a stored receiver secret"),
        ({"secretKeyRef": {"name": "hooks"}}, "secretKeyRef takes name, key and optionally namespace"),
        ({"secretKeyRef": {"name": "hooks", "key": "k", "extra": 1}}, "secretKeyRef takes name, key"),
        ({"secretKeyRef": {"name": "Hooks!", "key": "k"}}, "is not a valid Secret name"),
        ({"secretKeyRef": {"name": "hooks", "key": "a/b"}}, "is not a valid Secret key"),
        ({"secretKeyRef": {"name": "hooks", "key": "k", "namespace": "Pay_ments"}}, "not a valid namespace"),
        ({"secretRef": "a", "secretKeyRef": {"name": "b", "key": "c"}}, "exactly one of"),
    ],
)
def test_malformed_references_say_what_is_wrong(reference: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_reference(reference)


def test_a_reference_outside_a_secret_field_is_refused() -> None:
    text = REFERENCES.replace("- name: pager", "- name: {secretRef: team-hook}")
    with pytest.raises(ConfigError) as refused:
        parse_config(text, env={"SLACK_URL": "u"}, secrets={TEAM: "x", HMAC: "k", PD: "p"})
    assert refused.value.problems == (
        "receivers[1].name (line 8): a secret reference is only accepted in a secret field (url, secret, ...)",
    )


def test_references_are_not_literal_secrets_and_survive_redaction() -> None:
    assert literal_secrets(REFERENCES) == []
    assert redact_secrets(REFERENCES) == (REFERENCES, False)


def test_fetched_text_drops_one_trailing_newline_and_must_be_utf8() -> None:
    assert value_text(b"https://x/hook\n", TEAM) == "https://x/hook"
    assert value_text(b"line\n\n", TEAM) == "line\n"
    with pytest.raises(ValueError, match="'team-hook' is not UTF-8"):
        value_text(b"\xff\xfe", TEAM)


def test_keyring_encrypts_with_the_first_key_decrypts_with_any_and_rotation_moves_to_the_first() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Keyring([old]).encrypt("https://hooks.example.com/t")
    assert "hooks.example.com" not in token
    both = Keyring([new, old])
    assert both.primary == key_id(new) and both.ids == (key_id(new), key_id(old))
    assert both.decrypt(token, key_id(old)) == "https://hooks.example.com/t"
    rotated = both.rotate(token)
    assert Keyring([new]).decrypt(rotated) == "https://hooks.example.com/t"  # the old key can go
    with pytest.raises(InvalidToken):
        Keyring([new]).decrypt(token)
    assert key_id(old) != key_id(new) and old not in key_id(old)


def test_settings_take_a_json_list_of_keys_and_refuse_bad_or_placeholder_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("OPSBUS_NOTIFIER__SECRETS__KEYS", f'["{key}"]')
    assert [k.get_secret_value() for k in NotifierSettings().notifier.secrets.keys] == [key]
    zeros = base64.urlsafe_b64encode(bytes(32)).decode()
    with pytest.raises(ValueError, match="keys\\[0\\] is not a Fernet key"):
        NotifierSettings(notifier={"secrets": {"keys": ["changeme"]}})
    with pytest.raises(ValueError, match="the same key twice"):
        NotifierSettings(notifier={"secrets": {"keys": [key, key]}})
    production: dict[str, Any] = {
        "environment": "production",
        "database": {"url": "postgresql+asyncpg://n:Str0ng-pw@db/opsbus"},
    }
    for placeholder in (EXAMPLE_SECRETS_KEY, zeros):
        NotifierSettings(environment="development", notifier={"secrets": {"keys": [placeholder]}})
        with pytest.raises(ValueError, match="placeholder key") as refused:
            NotifierSettings(**production, notifier={"secrets": {"keys": [key, placeholder]}})
        assert key not in str(refused.value) and placeholder[-8:] not in str(refused.value)  # no key is quoted
    NotifierSettings(**production, notifier={"secrets": {"keys": [key]}})
