"""`POST /v1/alerts/zabbix`: the opsbus media type of Zabbix 6.0+ (deploy/zabbix/) -> `alert.fired`/`alert.resolved`.

Why this module exists: Zabbix is the monitoring many opsbus users already run; its problems and recoveries must
reach the healer and the notifier like Alertmanager's alerts do. The receiver has its own credentials
(`OPSBUS_GATEWAY__ZABBIX__BEARER_TOKEN`, the media type's `opsbus_token` parameter; or basic auth), checked by a
`Gate` before the body is read, so a forged call gets 401 whatever it sends; with none configured every call is
refused. A payload that is not the media type's gets 422 problem+json; neither reaches the bus. The answer is 200
only after JetStream stored the event (503 until NATS is back, and Zabbix retries the webhook).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from opsbus.gateway.auth import Ctx, Gate
from opsbus.gateway.domain.zabbix import ZabbixEvent, to_events
from opsbus.gateway.problems import PROBLEM_RESPONSES
from opsbus.gateway.routes.alerts import Accepted, accept, check_credentials

router = APIRouter(tags=["alerts"], responses=PROBLEM_RESPONSES)


class _ZabbixCredentials(Gate):
    async def admit(self, request: Request) -> None:
        check_credentials(request.app.state.ctx.settings.gateway.zabbix, request.headers.get("authorization"))


Zabbix = Annotated[None, Depends(_ZabbixCredentials())]


@router.post("/v1/alerts/zabbix", summary="Zabbix webhook receiver (the opsbus media type, Zabbix 6.0+)")
async def zabbix(*, sender: Zabbix, body: ZabbixEvent, ctx: Ctx) -> Accepted:
    return await accept(ctx, lambda now: to_events(body, default_cluster=ctx.settings.cluster, now=now))
