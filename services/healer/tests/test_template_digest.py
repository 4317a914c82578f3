"""The pod-template digest a rollback uses to skip revisions a rollout restart made (no cluster needed)."""

from __future__ import annotations

from kubernetes import client

from opsbus.healer.cluster import RESTARTED_AT, template_digest


def template(labels: dict[str, str], annotations: dict[str, str] | None = None, image: str = "app:1") -> object:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels, annotations=annotations),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]),
    )


def test_a_restart_and_the_replica_set_hash_do_not_change_the_digest() -> None:
    bad = template({"app": "shop", "chaos": "crashloop", "pod-template-hash": "abc"})
    restarted = template(
        {"app": "shop", "chaos": "crashloop", "pod-template-hash": "def"}, {RESTARTED_AT: "2026-11-22T23:00:00Z"}
    )
    assert template_digest(bad) == template_digest(restarted)


def test_a_different_template_has_a_different_digest() -> None:
    good = template({"app": "shop", "pod-template-hash": "x"})
    assert template_digest(good) != template_digest(template({"app": "shop", "chaos": "crashloop"}))
    assert template_digest(good) != template_digest(template({"app": "shop"}, image="app:2"))
    assert template_digest(good) != template_digest(template({"app": "shop"}, {"team": "payments"}))
