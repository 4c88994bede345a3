"""The audit log (every change staff or the API made: who, what, before/after), oldest first, paged by cursor."""
from __future__ import annotations

import re

from aiohttp import web

from bot.services import Services
from bot.web.http import MAX_PAGE, ApiError, query_int, query_str, shop_time
from rewards import keys as rkeys

STREAM_ID = r"\d{1,20}-\d{1,20}"


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def audit(request: web.Request) -> web.Response:
        """GET /api/v1/audit?after=<id>&limit=: oldest first from after the cursor; `next` pages on."""
        after = query_str(request, "after", max_length=45)
        if after is not None and not re.fullmatch(STREAM_ID, after):
            raise ApiError(400, "INVALID_AFTER", "after must be an audit entry id as returned (e.g. 1700000000000-0)")
        limit = query_int(request, "limit", 100, 1, MAX_PAGE)
        s = request.app[services_key]
        rows = await s.redis.xrange(rkeys.AUDIT, min=f"({after}" if after else "-", max="+", count=limit)
        entries = []
        for entry_id, fields in rows:
            row = {k.decode(): v.decode() for k, v in fields.items()}
            entries.append({"id": entry_id.decode(), **row, "at": shop_time(s, row.get("at"))})
        return web.json_response({"entries": entries, "next": entries[-1]["id"] if len(entries) == limit else None})

    app.router.add_get("/api/v1/audit", audit)
