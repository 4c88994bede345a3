"""GET /me/data?token=…: a member's own data, as JSON, through the short-lived signed link the chat gives them
(「データ」, handlers/privacy_data.py; bot/privacy.py signs it). Everything GET /api/v1/members/{id}/export gives."""
from __future__ import annotations

from aiohttp import web

from bot import privacy
from bot.web.http import error_response

_PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


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
            response = (web.json_response(data, dumps=privacy.dumps) if data is not None
                        else error_response(404, "UNKNOWN_MEMBER", "no data is kept for this link's member"))
        response.headers.update(_PRIVATE)
        return response

    app.router.add_get("/me/data", my_data)
