"""The policy editor's endpoints: read a version, list versions, validate, preview and put.

They need the policy store, the guards and the auditor, never the cluster, so tests serve them on a real bus
and database exactly as the service does. For a preview the gateway sends the edited document with the past
alerts the caller may see (it owns the incidents read model); this module turns them into the planner's plain
data, runs the pure preview (`domain.previewing`) for the edited document and for the version in force, and
answers. A put commits with its audit entry (`PolicyStore.put`); nothing else here writes.
"""

from __future__ import annotations

from typing import Any

from opsbus.common.audit import Auditor
from opsbus.common.errors import PermanentError
from opsbus.common.rpc import Endpoint
from opsbus.healer import api
from opsbus.healer.domain.planning import AlertState, Guards
from opsbus.healer.domain.policy import PolicyError, parse_policies
from opsbus.healer.domain.previewing import ASSUMPTIONS, Outcome, PastAlert, preview
from opsbus.healer.policies import PolicyStore


def _alert(past: api.PastAlert) -> PastAlert:
    """The planner's view of a past alert, as `recording.alert_state` builds it for a live one (kept apart:
    that module reads envelopes, this one the gateway's stored payloads)."""
    a = past.alert
    namespace = a.labels.get("namespace") or (a.workload.namespace if a.workload else None)
    state = AlertState(
        fingerprint=a.fingerprint,
        alertname=a.alertname,
        severity=a.severity,
        labels=dict(a.labels),
        namespace=namespace,
        event_time=past.fired_at,
        firing=True,
        workload=a.workload,
    )
    return PastAlert(past.incident_id, state)


def _outcome(o: Outcome) -> api.PreviewOutcome:
    return api.PreviewOutcome(
        policy=o.policy,
        step=o.step,
        action=o.action,
        decision=o.decision,
        guard=o.guard,
        reason=o.reason,
        passed=list(o.passed),
    )


async def preview_policy(store: PolicyStore, guards: Guards, r: api.PreviewPolicyRequest) -> api.PolicyPreview:
    current = await store.current()
    try:
        edited = parse_policies(r.document, version=current.version + 1)
    except PolicyError as exc:
        issues = [api.Issue(line=i.line, column=i.column, path=i.path, message=i.message) for i in exc.issues]
        return api.PolicyPreview(valid=False, issues=issues, current_version=current.version)
    alerts = [_alert(a) for a in r.alerts]
    rows = preview(edited, current, alerts, guards)
    items = [
        api.PreviewItem(
            incident_id=row.incident_id,
            alertname=past.alert.alertname,
            namespace=past.alert.namespace,
            fired_at=past.alert.event_time,
            edited=_outcome(row.edited),
            current=_outcome(row.current),
            changed=row.changed,
        )
        for row, past in zip(rows, alerts, strict=True)
    ]
    return api.PolicyPreview(valid=True, current_version=current.version, items=items, assumptions=list(ASSUMPTIONS))


async def policy_versions(store: PolicyStore, r: api.PolicyVersionsRequest) -> api.PolicyVersionList:
    current = await store.current()
    rows = await store.versions(r.limit)
    return api.PolicyVersionList(
        versions=[
            api.PolicyVersion(
                version=v.version,
                author=v.author,
                comment=v.comment,
                created_at=v.created_at,
                current=v.version == current.version,
            )
            for v in rows
        ]
    )


async def get_policies(store: PolicyStore, r: api.GetPoliciesRequest) -> api.PoliciesAnswer:
    if r.version is None:
        p = await store.current()
        return api.PoliciesAnswer(version=p.version, document=p.source, policies=[x.name for x in p.policies])
    row = await store.version(r.version)
    names = [x.name for x in parse_policies(row.document, version=row.version).policies]
    return api.PoliciesAnswer(version=row.version, document=row.document, policies=names)


async def validate_policy(r: api.ValidatePolicyRequest) -> api.ValidationAnswer:
    try:
        parsed = parse_policies(r.document)
    except PolicyError as exc:
        issues = [api.Issue(line=i.line, column=i.column, path=i.path, message=i.message) for i in exc.issues]
        return api.ValidationAnswer(valid=False, issues=issues)
    return api.ValidationAnswer(valid=True, issues=[], policies=[p.name for p in parsed.policies])


async def put_policy(store: PolicyStore, auditor: Auditor, r: api.PutPolicyRequest) -> api.PoliciesAnswer:
    try:
        audit = store.audit_for(auditor, author=r.author, comment=r.comment, caller=r.caller)
        p = await store.put(r.document, r.expected_version, r.author, r.comment, audit=audit)
    except PolicyError as exc:
        raise PermanentError(f"invalid policy document: {exc}") from exc
    return api.PoliciesAnswer(version=p.version, document=p.source, policies=[x.name for x in p.policies])


def endpoints(store: PolicyStore, guards: Guards, auditor: Auditor) -> list[Endpoint[Any, Any]]:
    async def get(r: api.GetPoliciesRequest) -> api.PoliciesAnswer:
        return await get_policies(store, r)

    async def versions(r: api.PolicyVersionsRequest) -> api.PolicyVersionList:
        return await policy_versions(store, r)

    async def dry_run(r: api.PreviewPolicyRequest) -> api.PolicyPreview:
        return await preview_policy(store, guards, r)

    async def put(r: api.PutPolicyRequest) -> api.PoliciesAnswer:
        return await put_policy(store, auditor, r)

    return [
        Endpoint("get_policies", api.GetPoliciesRequest, api.PoliciesAnswer, get, "current policies"),
        Endpoint("validate_policy", api.ValidatePolicyRequest, api.ValidationAnswer, validate_policy, "validate"),
        Endpoint("put_policy", api.PutPolicyRequest, api.PoliciesAnswer, put, "new policy version"),
        Endpoint("policy_versions", api.PolicyVersionsRequest, api.PolicyVersionList, versions, "versions"),
        Endpoint("preview_policy", api.PreviewPolicyRequest, api.PolicyPreview, dry_run, "dry-run on past alerts"),
    ]
