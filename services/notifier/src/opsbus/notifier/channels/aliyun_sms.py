"""Alibaba Cloud SMS (阿里云短信服务): `SendSms` of the Dysmsapi 2017-05-25 RPC API.

A form POST to `https://dysmsapi.aliyuncs.com/` with the common parameters (AccessKeyId, Timestamp in UTC,
SignatureNonce, SignatureMethod HMAC-SHA1, SignatureVersion 1.0, Format JSON, Version, Action) and `PhoneNumbers`,
`SignName`, `TemplateCode`, `TemplateParam` (JSON). The RPC signature: the parameters sorted and percent-encoded
(RFC 3986), `StringToSign = "POST&%2F&" + percent(canonical query)`, `Signature = base64(HMAC-SHA1(secret + "&"))`
(https://help.aliyun.com/zh/sdk/product-overview/rpc-mechanism). The answer is `{"Code": "OK", ...}`;
`isv.BUSINESS_LIMIT_CONTROL` (the per-number limits: one a minute, five an hour) and `Throttling`/`isp.*` are
retried, a missing or refused credential, sign, template or number is final.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from opsbus.notifier.channels import sms
from opsbus.notifier.channels.base import Outcome, http_outcome, post, redact
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import AliyunSmsConfig
from opsbus.notifier.rendering import Renderer

RETRYABLE = {"isv.BUSINESS_LIMIT_CONTROL": 60.0, "Throttling": 5.0, "Throttling.User": 5.0, "isp.SYSTEM_ERROR": 5.0}


def percent(value: str) -> str:
    """RFC 3986 percent-encoding as the RPC signature wants it (`~` kept, space `%20`, `*` `%2A`)."""
    return quote(value, safe="~")


def signed_params(params: dict[str, str], secret: str) -> dict[str, str]:
    canonical = "&".join(f"{percent(k)}={percent(v)}" for k, v in sorted(params.items()))
    to_sign = f"POST&{percent('/')}&{percent(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return {**params, "Signature": base64.b64encode(digest).decode()}


def phone(number: str) -> str:
    """E.164 as Dysmsapi takes it: mainland China numbers as they are (+86 accepted), others without the `+`."""
    return number if number.startswith("+86") else number.lstrip("+")


class AliyunSmsChannel:
    kind = "aliyun_sms"

    def __init__(self, config: AliyunSmsConfig, renderer: Renderer, client: httpx.AsyncClient) -> None:
        self._config = config
        self._renderer = renderer
        self._client = client
        self._secrets = [config.access_key_secret.get_secret_value(), config.access_key_id.get_secret_value()]

    def params(self, n: Notification, *, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
        cfg = self._config
        stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        template = sms.template_params(n, self._renderer.links, self._renderer.language)
        params = {
            "AccessKeyId": cfg.access_key_id.get_secret_value(),
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone(cfg.to[0]),
            "RegionId": cfg.region_id,
            "SignName": cfg.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "TemplateCode": cfg.template_code,
            "TemplateParam": json.dumps(template, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": stamp,
            "Version": "2017-05-25",
        }
        return signed_params(params, cfg.access_key_secret.get_secret_value())

    async def send(self, notification: Notification) -> Outcome:
        response = await post(self._client, self._config.endpoint, data=self.params(notification))
        if isinstance(response, Outcome):
            return response
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "Code" not in answer:
            outcome = http_outcome(response, self._secrets)
            return outcome if not outcome.delivered else Outcome(False, response.status_code, False, None, "no Code")
        code = str(answer["Code"])
        if code == "OK":
            return Outcome(True, response.status_code)
        error = redact(f"Code {code}: {str(answer.get('Message') or '')[:200]}", self._secrets)
        if code in RETRYABLE or code.startswith("isp.") or response.status_code >= 500:
            return Outcome(False, response.status_code, True, RETRYABLE.get(code, 5.0), error)
        return Outcome(False, response.status_code, False, None, error)
