"""`/v1/receiver-secrets`: values the notifier stores encrypted for its receivers (webhook and Slack URLs, routing
keys, passwords), referenced from the routes YAML as `secretRef: <name>`, so a receiver is added at run time
without a redeploy.

Write-only: a value goes in with PUT and never comes out (not in an answer, a log line, an audit entry or an
event); listing gives names and metadata. Only an admin of every namespace may touch them (the rule of
`PUT /v1/routes`: a secret serves the whole cluster's routing). The notifier audits each change in the same
transaction as its write (name, actor, key id), so nothing here is audited a second time.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from opsbus.common.api import notifier as api
from opsbus.gateway.auth import Admin, Ctx
from opsbus.gateway.domain.access import Principal, Role, authorize
from opsbus.gateway.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["notifications"], responses=PROBLEM_RESPONSES)
SecretName = Path(
    min_length=1, max_length=253, pattern=api.RECEIVER_SECRET_NAME, description="Lower-case letters, digits, -._"
)


class ReceiverSecretPut(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={"examples": [{"value": "https://hooks.slack.com/services/T0/B0/XXXX", "comment": "team"}]},
    )

    value: SecretStr = Field(
        min_length=1, max_length=api.RECEIVER_SECRET_MAX_BYTES, description="The secret; never returned."
    )
    comment: str | None = Field(default=None, max_length=2000, description="Why (recorded in the audit trail).")


def _admin(who: Principal, ctx: Ctx) -> str:
    authorize(who, Role.ADMIN, namespace=None, cluster=ctx.settings.cluster)
    return (who.display_name or who.label)[:253]


@router.put("/v1/receiver-secrets/{name}", summary="Store or replace a receiver secret (write-only; admin)")
async def put_receiver_secret(
    *, body: ReceiverSecretPut, who: Admin, ctx: Ctx, name: str = SecretName
) -> api.ReceiverSecretView:
    request = api.PutReceiverSecretRequest(
        name=name, value=body.value, updated_by=_admin(who, ctx), comment=body.comment
    )
    return await ctx.services.call(api.SERVICE, "put_receiver_secret", request, api.ReceiverSecretView)


@router.get("/v1/receiver-secrets", summary="Stored receiver secrets: names and metadata, never values (admin)")
async def list_receiver_secrets(*, who: Admin, ctx: Ctx) -> api.ReceiverSecretList:
    _admin(who, ctx)
    return await ctx.services.call(api.SERVICE, "list_receiver_secrets", api.Empty(), api.ReceiverSecretList)


@router.delete(
    "/v1/receiver-secrets/{name}",
    status_code=204,
    summary="Delete a receiver secret (409 while the routes in force refer to it; admin)",
)
async def delete_receiver_secret(*, who: Admin, ctx: Ctx, name: str = SecretName) -> Response:
    request = api.DeleteReceiverSecretRequest(name=name, deleted_by=_admin(who, ctx))
    await ctx.services.call(api.SERVICE, "delete_receiver_secret", request, api.ReceiverSecretView)
    return Response(status_code=204)


@router.post(
    "/v1/receiver-secrets/rotate",
    summary="Re-encrypt every receiver secret under the notifier's first key (key rotation; admin)",
)
async def rotate_receiver_secrets(*, who: Admin, ctx: Ctx) -> api.RotateReceiverSecretsResponse:
    request = api.RotateReceiverSecretsRequest(rotated_by=_admin(who, ctx))
    return await ctx.services.call(api.SERVICE, "rotate_receiver_secrets", request, api.RotateReceiverSecretsResponse)
