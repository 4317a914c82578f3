"""References to receiver secrets that live outside the configuration YAML, so that a receiver can be added through
the API without a redeploy.

A secret field (a webhook or Slack URL, a PagerDuty routing key, an SMTP password, an HMAC key) holds one of:

    url: ${TEAM_HOOK_URL}                                   # the notifier's environment
    url: {secretKeyRef: {name: hooks, key: team-url}}       # a Kubernetes Secret (namespace: the notifier's own)
    url: {secretKeyRef: {name: hooks, key: team-url, namespace: payments}}
    url: {secretRef: team-hook}                             # a value stored encrypted by the notifier (API)

This module only reads the syntax and names what must be fetched; the adapters (`opsbus.notifier.secretsources`)
fetch the values and hand them back as a `Resolved` mapping. Every message here names the reference (the Secret
and key, or the stored name), never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsbus.common.api.notifier import RECEIVER_SECRET_NAME

_STORED_NAME = re.compile(RECEIVER_SECRET_NAME)
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # a DNS subdomain, as Secret names are
_K8S_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS label
_K8S_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")  # a Secret's data key
KINDS = ("secretKeyRef", "secretRef")


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """One key of a Kubernetes Secret; `namespace` None is the notifier's own namespace."""

    name: str
    key: str
    namespace: str | None = None

    def __str__(self) -> str:
        return f"key {self.key!r} of Secret {self.namespace or '<own namespace>'}/{self.name}"


@dataclass(frozen=True, slots=True)
class StoredSecretRef:
    """A value stored encrypted in the notifier's schema (put through the API)."""

    name: str

    def __str__(self) -> str:
        return f"stored receiver secret {self.name!r}"


SecretRef = SecretKeyRef | StoredSecretRef


@dataclass(frozen=True, slots=True)
class Unresolved:
    """Why a reference has no value (missing Secret or key, no permission, ...): names it, never a value."""

    reason: str


Resolved = Mapping[SecretRef, str | Unresolved]


def is_reference(value: Any) -> bool:
    """True when `value` is written as a reference (`{secretKeyRef: ...}` or `{secretRef: ...}`)."""
    return isinstance(value, dict) and any(kind in value for kind in KINDS)


def parse_reference(value: Mapping[str, Any]) -> SecretRef:
    """The reference `value` spells; `ValueError` saying what is wrong with it."""
    if len(value) != 1:
        raise ValueError(f"a secret reference has exactly one of {' or '.join(KINDS)}, nothing else")
    if "secretRef" in value:
        name = value["secretRef"]
        if not isinstance(name, str) or not _STORED_NAME.match(name):
            raise ValueError(f"secretRef must name a stored receiver secret matching {RECEIVER_SECRET_NAME}")
        return StoredSecretRef(name)
    spec = value["secretKeyRef"]
    if not isinstance(spec, dict) or not {"name", "key"} <= spec.keys() or spec.keys() - {"name", "key", "namespace"}:
        raise ValueError("secretKeyRef takes name, key and optionally namespace")
    name, key, namespace = spec["name"], spec["key"], spec.get("namespace")
    if not isinstance(name, str) or not _K8S_NAME.match(name):
        raise ValueError(f"secretKeyRef.name {name!r} is not a valid Secret name")
    if not isinstance(key, str) or not _K8S_KEY.match(key):
        raise ValueError(f"secretKeyRef.key {key!r} is not a valid Secret key")
    if namespace is not None and (not isinstance(namespace, str) or not _K8S_NAMESPACE.match(namespace)):
        raise ValueError(f"secretKeyRef.namespace {namespace!r} is not a valid namespace name")
    return SecretKeyRef(name=name, key=key, namespace=namespace)


def resolve(ref: SecretRef, values: Resolved | None) -> str:
    """The value of `ref` in `values`; `ValueError` naming the reference when there is none."""
    found = None if values is None else values.get(ref)
    if found is None:
        raise ValueError(f"{ref} was not looked up (secret references need the notifier's secret sources)")
    if isinstance(found, Unresolved):
        raise ValueError(found.reason)
    return found


def value_text(data: bytes, ref: SecretRef) -> str:
    """A fetched secret as text: UTF-8, one trailing newline dropped (`kubectl create secret --from-file` of a file
    written by `echo` keeps it, and a URL or key never ends with one); `ValueError` when it is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{ref} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")
