"""[budget]: this month's spend against each cap, and an owner's release of referral completions held for it."""
from __future__ import annotations

from aiohttp import web

from bot import notices
from bot.services import Services
from bot.web.http import ApiError, optional_body, valid_user_id
from rewards import budget_holds
from rewards.budget import KINDS

WHO = "api"  # the audit log's "who" for a release (the admin token is the owner's)
MAX_FRIENDS = 500


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    async def status(request: web.Request) -> web.Response:
        """GET /api/v1/budget: each budget's month, spend, cap, share and state, and the held completions."""
        program = request.app[services_key].program
        held = await program.budget.held()
        return web.json_response({"budgets": {kind: (await program.budget.status(kind)).as_json() for kind in KINDS},
                                  "held": [{"friend_id": f, "held_at_ms": at} for f, at in held]})

    async def release(request: web.Request) -> web.Response:
        """POST /api/v1/budget/release {friend_ids?: [...], reason?}: approve held completions (all, or these)
        past the cap; each pays once however often it is released, audited as an approval."""
        body = await optional_body(request, {"friend_ids": list, "reason": str})
        friends = body.get("friend_ids")
        if friends is not None:
            if len(friends) > MAX_FRIENDS or not all(isinstance(f, str) for f in friends):
                raise ApiError(400, "INVALID_FIELD", f"friend_ids must be up to {MAX_FRIENDS} user ids")
            friends = [valid_user_id(f) for f in friends]
        services = request.app[services_key]
        decisions = await budget_holds.release(services.program, WHO, friends,
                                                reason=str(body.get("reason") or "budget release")[:500])
        for decision in decisions:
            await notices.after_review_decision(services, decision)
        return web.json_response({"released": [{"friend_id": d.friend, "referrer_id": d.referrer, "status": d.status,
                                                "changed": d.changed} for d in decisions]})

    app.router.add_get("/api/v1/budget", status)
    app.router.add_post("/api/v1/budget/release", release)
