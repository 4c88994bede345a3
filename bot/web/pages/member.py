"""The member QR a customer shows at the counter: /m/{token}.png encodes the member token (never the
user id); staff tools resolve it with Program.member_by_token."""
from __future__ import annotations

import re

from aiohttp import web

from bot.web.pages.render import qr_png

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def setup(app: web.Application, services_key: web.AppKey) -> None:
    async def member_qr(request: web.Request) -> web.Response:
        services = request.app[services_key]
        token = request.match_info["token"]
        if not _TOKEN.match(token) or await services.program.member_by_token(token) is None:
            return web.Response(status=404, text="no such member card")
        return web.Response(body=qr_png(token), content_type="image/png",
                            headers={"Cache-Control": "private, max-age=3600"})

    app.router.add_get("/m/{token}.png", member_qr)
