"""The program's numbers: running totals, and the last `days` days by day."""
from __future__ import annotations

from aiohttp import web

from bot.services import Services
from bot.web.http import ApiError
from rewards import stats as stats_report


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def stats(request: web.Request) -> web.Response:
        """The running totals, and under "report" the numbers of the last `days` days (1 to 90) by day."""
        raw = request.query.get("days", "30")
        if not raw.isdigit() or not 1 <= int(raw) <= stats_report.MAX_DAYS:
            raise ApiError(400, "INVALID_DAYS", f"days must be a whole number from 1 to {stats_report.MAX_DAYS}")
        program = request.app[services_key].program
        return web.json_response(await program.stats() | {"report": await stats_report.report(program, int(raw))})

    app.router.add_get("/api/v1/stats", stats)
