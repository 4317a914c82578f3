"""WeCom (企业微信) group robot: markdown messages, or text when members are mentioned by mobile.

API: `POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...` with a JSON body
(https://developer.work.weixin.qq.com/document/path/91770). The key in the URL is the only credential. Markdown
content is at most 4,096 bytes and mentions members as `<@userid>`; mentioning by mobile needs a text message
(`mentioned_mobile_list`, content at most 2,048 bytes), so a robot configured with mobiles sends text.
Answers are HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`; a robot may send 20 messages a minute (errcode 45009
"api freq out of limit" is retried after a minute), -1 "system busy" is retried, anything else (an invalid key
93000, a bad body 40008/40058/44004) is final.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsbus.notifier.channels.base import HttpChannel, Outcome, provider_code
from opsbus.notifier.channels.chat import fit_bytes
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import WeComConfig
from opsbus.notifier.rendering import Rendered, Renderer

MARKDOWN_LIMIT = 4096
TEXT_LIMIT = 2048
RATE_LIMITED = {45009: 60.0}
BUSY = (-1,)


def body(rendered: Rendered, config: WeComConfig) -> dict[str, Any]:
    if config.mention_mobiles:
        return {
            "msgtype": "text",
            "text": {
                "content": fit_bytes(f"{rendered.title}\n{rendered.text}", TEXT_LIMIT),
                "mentioned_list": config.mention_user_ids,
                "mentioned_mobile_list": config.mention_mobiles,
            },
        }
    color = "warning" if rendered.title.startswith(("[FIRING", "[告警")) else "info"
    mentions = " ".join("@all" if u == "@all" else f"<@{u}>" for u in config.mention_user_ids)
    tail = f"\n{mentions}" if mentions else ""
    head = f'## <font color="{color}">{rendered.title}</font>\n'
    room = MARKDOWN_LIMIT - len(head.encode()) - len(tail.encode())
    return {"msgtype": "markdown", "markdown": {"content": head + fit_bytes(rendered.text, room) + tail}}


def judge(response: httpx.Response) -> Outcome:
    return provider_code(response, code_key="errcode", message_key="errmsg", rate_limited=RATE_LIMITED, busy=BUSY)


def channel(config: WeComConfig, renderer: Renderer, client: httpx.AsyncClient) -> HttpChannel:
    def build(n: Notification) -> dict[str, Any]:
        return body(renderer.render(n, fence=""), config)

    return HttpChannel("wecom", client, config.url.get_secret_value(), build, judge=judge)
