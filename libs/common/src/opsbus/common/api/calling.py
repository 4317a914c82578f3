"""Who asked: the caller of a mutating request-reply operation, so the service that owns the data audits it.

The gateway authenticates a person or an API key and calls a service's endpoint on their behalf. The audit
entry of that call must commit in the same transaction as the write it records, and only the service that
owns the data holds that transaction: so the request carries the caller (the actor and the gateway's request
id) and the owning service records the entry through its outbox. A decision taken from a chat button names
the chat and the chat identity too, for the audit entry. Pure pydantic, no I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from opsbus.common.events.payloads.common import Actor


class Caller(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: Actor = Field(description="Who asked: an API key or an OIDC subject (never a secret).")
    request_id: str = Field(min_length=1, max_length=200, description="The gateway's request id (X-Request-Id).")
    channel: str | None = Field(
        default=None, max_length=63, description="The chat the person decided from (e.g. `slack`); none: the API."
    )
    channel_user: str | None = Field(
        default=None, max_length=253, description="Their identity in that chat (e.g. a Slack user id)."
    )
