"""GET /me/data?token=…: a member's own data, as JSON, through the short-lived signed link the chat gives them
(「データ」, handlers/privacy_data.py; bot/privacy.py signs it). What GET /api/v1/members/{id}/export gives, with
every other person's LINE user id (the friend they invited, their referrer, a staff member in the audit trail)
replaced by the masked label members see everywhere else (rewards/names.py): their data, not other people's ids."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot import privacy
from bot.web.http import error_response
from rewards.names import masked_label

_PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
_USER_ID = re.compile(r"U[0-9a-f]{32}")


def for_member(data: Any, uid: str) -> Any:
    """The export with every user id but the member's own masked, in keys, values and key names alike."""
    def mask(text: str) -> str:
        return _USER_ID.sub(lambda m: m.group(0) if m.group(0) == uid else f"member-{masked_label(m.group(0))}", text)

    if isinstance(data, dict):
        return {mask(k) if isinstance(k, str) else k: for_member(v, uid) for k, v in data.items()}
    if isinstance(data, list):
        return [for_member(v, uid) for v in data]
    return mask(data) if isinstance(data, str) else data


def setup(app: web.Application, services_key: web.AppKey) -> None:
    async def my_data(request: web.Request) -> web.Response:
        services = request.app[services_key]
        token = request.query.get("token", "")
        uid = privacy.token_user(privacy.link_key(services.settings.channel_secret), token, services.program.now_ms())
        if uid is None:
            response = error_response(404, "INVALID_LINK", "this link is not valid or has expired (15 minutes): "
                                                           "ask for a new one in the chat")
        else:
            data = await services.program.privacy.export(uid)
            response = (web.json_response(for_member(data, uid), dumps=privacy.dumps) if data is not None
                        else error_response(404, "UNKNOWN_MEMBER", "no data is kept for this link's member"))
        response.headers.update(_PRIVATE)
        return response

    app.router.add_get("/me/data", my_data)
