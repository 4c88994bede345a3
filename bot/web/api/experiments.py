"""Offer experiments ([[experiments]] in the rules): each arm's report, and the ending that moves everyone to the
winner (rewards/experiments.py)."""
from __future__ import annotations

from aiohttp import web

from bot.services import Services
from bot.web.http import ApiError, field, json_body

WHO = "api"  # the audit log's "who" for an ending asked through the admin API


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def experiments(request: web.Request) -> web.Response:
        """GET /api/v1/experiments: every experiment the rules list, newest first, each arm with its figures."""
        program = request.app[services_key].program
        return web.json_response({"experiments": await program.experiments.report()})

    async def end(request: web.Request) -> web.Response:
        """POST /api/v1/experiments/{experiment_id}/end {"winner": arm}: everyone gets the winner's offer from now
        on (referrals attributed before keep theirs). The same winner again: 200, changed false."""
        exp_id = request.match_info["experiment_id"]
        body = await json_body(request, {"winner"})
        winner = str(field(body, "winner", str)).strip()
        if not winner or len(winner) > 40:
            raise ApiError(400, "INVALID_WINNER", "winner must be the id of one of the experiment's arms")
        changed, ending = await request.app[services_key].program.experiments.end(exp_id, winner, WHO)
        return web.json_response({"experiment_id": exp_id, "winner": ending["winner"], "changed": changed,
                                  "ended_at": ending["at"], "by": ending["by"]})

    app.router.add_get("/api/v1/experiments", experiments)
    app.router.add_post("/api/v1/experiments/{experiment_id}/end", end)
