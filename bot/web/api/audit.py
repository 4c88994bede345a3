"""The audit log (every change staff or the API made: who, what, before/after), oldest first, paged by cursor."""
from __future__ import annotations

from aiohttp import web

from bot.services import Services
from bot.web.http import MAX_PAGE, ApiError, query_int, query_str, shop_time
from rewards import audit as audit_log


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def audit(request: web.Request) -> web.Response:
        """GET /api/v1/audit?after=<id>&limit=: oldest first from after the cursor; `next` pages on."""
        after = query_str(request, "after", max_length=45)
        if after is not None and not audit_log.ENTRY_ID.fullmatch(after):
            raise ApiError(400, "INVALID_AFTER", "after must be an audit entry id as returned (e.g. 1700000000000-0)")
        limit = query_int(request, "limit", 100, 1, MAX_PAGE)
        s = request.app[services_key]
        rows, _ = await audit_log.read(s.redis, limit=limit, after=after)
        entries = [{**row, "at": shop_time(s, row.get("at"))} for row in rows]
        return web.json_response({"entries": entries, "next": entries[-1]["id"] if len(entries) == limit else None})

    app.router.add_get("/api/v1/audit", audit)
