"""Staff: who may use the staff commands in chat, from STAFF_USER_IDS and added here; each gets the staff menu."""
from __future__ import annotations

from aiohttp import web

from bot.chat import staff
from bot.richmenu.staff import link_staff_menu, unlink_staff_menu
from bot.services import Services
from bot.web.http import ApiError, valid_user_id

WHO = "api"  # the audit log's "who" for these changes


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def staff_members(request: web.Request) -> web.Response:
        configured, added = await staff.staff_list(services(request))
        return web.json_response({"configured": configured, "added": added})

    async def add_staff(request: web.Request) -> web.Response:
        user_id = valid_user_id(request.match_info["user_id"])
        s = services(request)
        added = await staff.add_staff(s, user_id)
        if added:
            await s.program.audit(WHO, "add_staff", user_id, before="customer", after="staff")
        await link_staff_menu(s.line, s.redis, user_id)  # best effort: logged when LINE refuses
        return web.json_response({"user_id": user_id, "staff": True, "changed": added})

    async def remove_staff(request: web.Request) -> web.Response:
        user_id = valid_user_id(request.match_info["user_id"])
        s = services(request)
        if user_id in s.settings.staff_user_ids:
            raise ApiError(409, "CONFIGURED_STAFF", "this user is staff through STAFF_USER_IDS; change it there")
        removed = await staff.remove_staff(s, user_id)
        if removed:
            await s.program.audit(WHO, "remove_staff", user_id, before="staff", after="customer")
        await unlink_staff_menu(s.line, s.redis, user_id)
        return web.json_response({"user_id": user_id, "staff": False, "changed": removed})

    app.router.add_get("/api/v1/staff", staff_members)
    app.router.add_post("/api/v1/staff/{user_id}", add_staff)
    app.router.add_delete("/api/v1/staff/{user_id}", remove_staff)
