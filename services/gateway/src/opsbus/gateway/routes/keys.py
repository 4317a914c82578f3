"""`/v1/keys`: API keys (admin). The token is in the create response only; a key never out-scopes its maker.

A key is created or revoked in one transaction with its audit entry: if the entry cannot be written the
request fails and no key exists (no token was shown). The reason names the namespaces that fit in 1,000
characters and counts the rest; the whole list is in the entry's details."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Path, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opsbus.common.events import Envelope
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.gateway.auth import Admin, Caller, Ctx, RequestId
from opsbus.gateway.domain.access import ALL, Denied, Principal, Role, Scope
from opsbus.gateway.keystore import KeyRecord
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem, ProblemError

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=PROBLEM_RESPONSES)
whoami_router = APIRouter(responses=PROBLEM_RESPONSES)
_NAME = r"^(\*|[A-Za-z0-9_][A-Za-z0-9_\-]{0,252})$"


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="What the key is for, e.g. `ci-payments`.")
    role: Literal["viewer", "operator", "admin"]
    namespaces: list[str] = Field(min_length=1, max_length=500, description='Namespaces, or `["*"]` for all.')
    clusters: list[str] = Field(default=[ALL], min_length=1, max_length=100, description="Clusters, or `*`.")
    expires_at: AwareDatetime | None = Field(default=None, description="Expiry; or give ttl_seconds.")
    ttl_seconds: int | None = Field(default=None, ge=60, le=400 * 86400)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "ci-payments", "role": "operator", "namespaces": ["payments"], "ttl_seconds": 86400}]
        }
    )


class KeyView(BaseModel):
    id: str
    name: str
    prefix: str
    role: str
    namespaces: list[str]
    clusters: list[str]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyView):
    token: str = Field(description="The API key. Shown this once; store it in a secret manager.")


class KeyList(BaseModel):
    items: list[KeyView]


class Identity(BaseModel):
    kind: Literal["apikey", "user"] = Field(description="An API key or an OIDC subject.")
    id: str
    display_name: str | None
    role: Literal["viewer", "operator", "admin"]
    namespaces: list[str] = Field(description="`*` means every namespace.")
    clusters: list[str] = Field(description="`*` means every cluster.")


def listed(items: list[str], budget: int = 1000) -> str:
    """Names for an audit reason: as many as fit in `budget` characters (at least one) and how many more.
    The whole list goes into the entry's details."""
    shown, size = min(1, len(items)), len(items[0]) if items else 0
    for item in items[1:]:
        size += 1 + len(item)
        if size > budget:
            break
        shown += 1
    head = ",".join(items[:shown])
    return head if shown >= len(items) else f"{head} and {len(items) - shown} more"


def view(r: KeyRecord) -> KeyView:
    return KeyView(
        id=r.id,
        name=r.name,
        prefix=r.prefix,
        role=str(r.role),
        namespaces=list(r.namespaces),
        clusters=list(r.clusters),
        created_at=r.created_at,
        created_by=r.created_by,
        expires_at=r.expires_at,
        revoked_at=r.revoked_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an API key (the token is shown once)")
async def create_key(*, body: KeyCreate, who: Admin, ctx: Ctx, rid: RequestId) -> KeyCreated:
    for field, names in (("namespaces", body.namespaces), ("clusters", body.clusters)):
        for index, name in enumerate(names):
            if not re.match(_NAME, name):
                problem = ProblemError(pointer=f"#/{field}/{index}", detail="not a valid name, nor `*`")
                raise ApiProblem(422, f"{name!r} is not a name or `*`", slug="validation", errors=[problem])
    if body.expires_at is not None and body.ttl_seconds is not None:
        raise ApiProblem(422, "give expires_at or ttl_seconds, not both", slug="validation")
    role = Role.parse(body.role)
    scope = Scope.of(body.namespaces, body.clusters)
    if role > who.role or not who.scope.covers(scope):
        raise Denied("a key may not have a higher role or a wider scope than the key that creates it")
    expires = body.expires_at
    if body.ttl_seconds is not None:
        expires = ctx.keys.clock() + timedelta(seconds=body.ttl_seconds)

    def audit(record: KeyRecord) -> Envelope:
        return ctx.commands.entry(
            who,
            action="apikey.create",
            target=ResourceRef(kind="ApiKey", name=record.id),
            reason=f"key {body.name!r} ({body.role}) for namespaces {listed(body.namespaces)}",
            request_id=rid,
            details={"role": body.role, "namespaces": ",".join(body.namespaces), "clusters": ",".join(body.clusters)},
        )

    record, token = await ctx.keys.create(
        name=body.name,
        role=role,
        namespaces=body.namespaces,
        clusters=body.clusters,
        created_by=who.label,
        expires_at=expires,
        audit=audit,
    )
    return KeyCreated(**view(record).model_dump(), token=token)


@router.get("", summary="List API keys (no secrets)")
async def list_keys(*, who: Admin, ctx: Ctx) -> KeyList:
    records = [r for r in await ctx.keys.list() if who.scope.covers(Scope.of(r.namespaces, r.clusters))]
    return KeyList(items=[view(r) for r in records])


@router.delete("/{key_id}", summary="Revoke an API key (immediately on this replica)")
async def revoke_key(
    *, who: Admin, ctx: Ctx, rid: RequestId, key_id: str = Path(min_length=1, max_length=64)
) -> KeyView:
    record = await ctx.keys.get(key_id)
    if not who.scope.covers(Scope.of(record.namespaces, record.clusters)):
        raise Denied("the key is outside your scope", hidden=True)
    record = await ctx.keys.revoke(
        key_id,
        by=who.label,
        audit=lambda r: ctx.commands.entry(
            who, action="apikey.revoke", target=ResourceRef(kind="ApiKey", name=r.id), reason="revoked", request_id=rid
        ),
    )
    return view(record)


def identity(who: Principal) -> Identity:
    return Identity(
        kind="apikey" if who.kind == "apikey" else "user",
        id=who.id,
        display_name=who.display_name,
        role=str(who.role),
        namespaces=sorted(who.scope.namespaces),
        clusters=sorted(who.scope.clusters),
    )


@whoami_router.get("/v1/whoami", tags=["keys"], summary="Who the gateway takes you for: role and scope")
async def whoami(*, who: Caller) -> Identity:
    return identity(who)
