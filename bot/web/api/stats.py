"""The program's numbers: running totals, and the last `days` days by day."""
from __future__ import annotations

from aiohttp import web

from bot.services import Services
from bot.web.http import query_int
from rewards import stats as stats_report


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def stats(request: web.Request) -> web.Response:
        """The running totals, and under "report" the numbers of the last `days` days (1 to 90) by day."""
        days = query_int(request, "days", 30, 1, stats_report.MAX_DAYS)
        program = request.app[services_key].program
        return web.json_response(await program.stats() | {"report": await stats_report.report(program, days)})

    app.router.add_get("/api/v1/stats", stats)
