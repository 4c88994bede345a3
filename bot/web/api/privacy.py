"""A member's data on request (APPI): GET /api/v1/members/{user_id}/export (everything kept about them, as JSON)
and DELETE /api/v1/members/{user_id} (their erasure: rewards/privacy.py). Afterwards both answer 404 for the id."""
from __future__ import annotations

from aiohttp import web

from bot import privacy
from bot.services import Services
from bot.web.http import ApiError, valid_user_id


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def export(request: web.Request) -> web.Response:
        user_id = valid_user_id(request.match_info["user_id"])
        data = await request.app[services_key].program.privacy.export(user_id)
        if data is None:
            raise ApiError(404, "UNKNOWN_MEMBER", "no member with that user id")
        return web.json_response(data, dumps=privacy.dumps, headers={"Cache-Control": "no-store"})

    async def erase(request: web.Request) -> web.Response:
        user_id = valid_user_id(request.match_info["user_id"])
        erased = await request.app[services_key].program.privacy.erase(user_id, by="admin-api")
        if erased is None:
            raise ApiError(404, "UNKNOWN_MEMBER", "no member with that user id (or erased already)")
        return web.json_response({"user_id": user_id, "erased": True, "points_forfeited": erased.points_forfeited})

    app.router.add_get("/api/v1/members/{user_id}/export", export)
    app.router.add_delete("/api/v1/members/{user_id}", erase)
