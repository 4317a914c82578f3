"""Twilio Programmable Messaging: `POST {endpoint}/2010-04-01/Accounts/{AccountSid}/Messages.json`.

Form-encoded `To`, `From` (or `MessagingServiceSid` for an `MG...` sender) and `Body`, HTTP Basic auth with the
account SID and auth token (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource).
201 is accepted. 429 (error 20429, too many requests) and 5xx are retried after Retry-After or the backoff; other
4xx are final: 21211 an invalid `To`, 21610 a recipient who replied STOP, 20003 a refused credential.
"""

from __future__ import annotations

import httpx

from opsbus.notifier.channels import sms
from opsbus.notifier.channels.base import Outcome, http_outcome, post
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import TwilioConfig
from opsbus.notifier.rendering import Renderer


class TwilioChannel:
    kind = "twilio"

    def __init__(self, config: TwilioConfig, renderer: Renderer, client: httpx.AsyncClient) -> None:
        self._config = config
        self._renderer = renderer
        self._client = client
        self._url = f"{config.endpoint.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        self._secrets = [config.auth_token.get_secret_value()]

    def form(self, n: Notification) -> dict[str, str]:
        cfg = self._config
        sender = {"MessagingServiceSid": cfg.sender} if cfg.sender.startswith("MG") else {"From": cfg.sender}
        return {"To": cfg.to[0], **sender, "Body": sms.text(n, self._renderer.links, self._renderer.language)}

    async def send(self, notification: Notification) -> Outcome:
        auth = httpx.BasicAuth(self._config.account_sid, self._config.auth_token.get_secret_value())
        response = await post(self._client, self._url, data=self.form(notification), auth=auth)
        if isinstance(response, Outcome):
            return response
        return http_outcome(response, self._secrets)
