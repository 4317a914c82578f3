"""Stand-ins for Alibaba Cloud SMS (Dysmsapi `SendSms`, RPC signature) and Twilio's Messages API on 127.0.0.1.

Each checks what the provider checks before it sends anything: Alibaba's RPC signature recomputed from the
AccessKey secret (and the common parameters, the sign, the template, the number), Twilio's Basic credentials, an
E.164 `To` and a sender; each answers in the provider's own format, with `script` giving its next answers
(Alibaba `Code`s, Twilio HTTP status and error code)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opsbus.common.testing.servers import free_port
from tests.integration.chat_providers import serving

ALIYUN_ID, ALIYUN_SECRET = "LTAI5tOpsbusTestKeyId", "aliyunSECRETopsbus0123456789"
TWILIO_SID, TWILIO_TOKEN = "AC" + "0123456789abcdef" * 2, "twilioTOKENsecret0123456789"
SECRETS = (ALIYUN_SECRET, TWILIO_TOKEN)
COMMON = ("AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce", "SignatureVersion", "Timestamp")


def enc(value: object) -> str:
    return quote(str(value), safe="~")


@dataclass
class SmsProviders:
    port: int
    aliyun_script: list[str] = field(default_factory=list)  # next `Code`s
    twilio_script: list[tuple[int, int]] = field(default_factory=list)  # next (HTTP status, Twilio error code)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (provider, request form)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def aliyun(self, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        self.sent.append(("aliyun", form))
        signature = str(form.pop("Signature", ""))
        canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(form.items()))
        digest = hmac.new(f"{ALIYUN_SECRET}&".encode(), f"POST&%2F&{enc(canonical)}".encode(), hashlib.sha1)
        code = self.aliyun_script.pop(0) if self.aliyun_script else "OK"
        if any(k not in form for k in COMMON) or form.get("AccessKeyId") != ALIYUN_ID:
            code = "InvalidAccessKeyId.NotFound"
        elif signature != base64.b64encode(digest.digest()).decode():
            code = "SignatureDoesNotMatch"
        elif form.get("Action") != "SendSms" or form.get("Version") != "2017-05-25":
            code = "InvalidAction.NotFound"
        elif not form.get("SignName") or not form.get("TemplateCode"):
            code = "isv.SMS_SIGNATURE_ILLEGAL"
        elif not re.fullmatch(r"\+?[0-9]{7,15}", str(form.get("PhoneNumbers", ""))):
            code = "isv.MOBILE_NUMBER_ILLEGAL"
        else:
            params = json.loads(str(form.get("TemplateParam", "{}")))
            if any(len(v) > 35 for k, v in params.items() if k != "link"):
                code = "isv.PARAM_LENGTH_LIMIT"
        status = 200 if code == "OK" or code.startswith("isv.") else 400
        body = {"Code": code, "Message": "OK" if code == "OK" else f"refused: {code}", "RequestId": "r-1"}
        return JSONResponse(body, status_code=status)

    async def twilio(self, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        self.sent.append(("twilio", form))
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        status, code = self.twilio_script.pop(0) if self.twilio_script else (201, 0)
        if request.path_params["sid"] != TWILIO_SID or request.headers.get("authorization") != expected:
            status, code = 401, 20003
        elif not re.fullmatch(r"\+[1-9][0-9]{6,14}", str(form.get("To", ""))):
            status, code = 400, 21211
        elif not (form.get("From") or form.get("MessagingServiceSid")) or not form.get("Body"):
            status, code = 400, 21602
        elif len(str(form["Body"])) > 1600:
            status, code = 400, 21617
        if status == 201:
            return JSONResponse({"sid": "SM" + "0" * 32, "status": "queued", "to": form["To"]}, status_code=201)
        headers = {"Retry-After": "1"} if status == 429 else {}
        return JSONResponse({"code": code, "message": f"error {code}", "status": status}, status, headers=headers)


async def sms_providers() -> AsyncIterator[SmsProviders]:
    providers = SmsProviders(port=free_port())
    app = Starlette(
        routes=[
            Route("/", providers.aliyun, methods=["POST"]),
            Route("/2010-04-01/Accounts/{sid}/Messages.json", providers.twilio, methods=["POST"]),
        ]
    )
    async with serving(app, providers.port):
        yield providers


def receiver(provider: str, providers: SmsProviders, to: list[str], **extra: Any) -> dict[str, Any]:
    if provider == "aliyun_sms":
        integration = {
            "access_key_id": ALIYUN_ID,
            "access_key_secret": ALIYUN_SECRET,
            "sign_name": "运维平台",
            "template_code": "SMS_000001",
            "endpoint": providers.base + "/",
        }
    else:
        integration = {"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": "+15005550006"}
        integration["endpoint"] = providers.base
    return {f"{provider}_configs": [{**integration, "to": to, **extra}]}
