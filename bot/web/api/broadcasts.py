"""Broadcasts over the admin API: queue one (or a dry run), list, look at, cancel and resume.

The body of POST /api/v1/broadcasts is what Broadcasts.create takes (bot/broadcasts/service.py). Answers:
    POST → 202 {"id": string, "warnings"?: [{"code", "message", ...}]}   (dry run: 200 {"dry_run": true,
           "total": int, "preview": [...], "warnings"?})
    GET /api/v1/broadcasts/{id} → 200 job view; GET /api/v1/broadcasts?limit=N → {"broadcasts": [job view…]}
           newest first; POST /api/v1/broadcasts/{id}/cancel and /resume → 200 job view, 409 when the job's
           status does not allow it; unknown id → 404.
    (the job view: bot/broadcasts/service.py)
    errors: 400 {"error": {"code": INVALID_TEXT | INVALID_MESSAGES | INVALID_SEGMENT | UNKNOWN_PLACEHOLDER |
           INVALID_SCHEDULED_AT | INVALID_DRY_RUN, "message"}}
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.broadcasts.service import BODY_FIELDS, BroadcastError, Broadcasts
from bot.services import Services
from bot.web.http import ApiError, json_body, query_int

WHO = "admin-api"  # the job's "by" and the audit log's "who"


def _refused(exc: BroadcastError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def service(request: web.Request) -> Broadcasts:
        return Broadcasts(request.app[services_key])

    async def create(request: web.Request) -> web.Response:
        body = await json_body(request, BODY_FIELDS)
        try:
            answer = await service(request).create(body, by=WHO)
        except BroadcastError as exc:
            raise _refused(exc) from exc
        if answer.get("dry_run"):
            return web.json_response(answer)
        out = {"id": answer["id"], **({"warnings": answer["warnings"]} if "warnings" in answer else {})}
        return web.json_response(out, status=202)

    async def get(request: web.Request) -> web.Response:
        view = await service(request).get(request.match_info["job_id"])
        if view is None:
            raise ApiError(404, "UNKNOWN_BROADCAST", "no broadcast with that id")
        return web.json_response(view)

    async def listing(request: web.Request) -> web.Response:
        limit = query_int(request, "limit", 50, 1, 500)
        return web.json_response({"broadcasts": await service(request).latest(limit)})

    def action(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            b = service(request)
            try:
                view = await getattr(b, name)(request.match_info["job_id"], WHO)
            except BroadcastError as exc:
                raise _refused(exc) from exc
            return web.json_response(view)
        return handler

    app.router.add_post("/api/v1/broadcasts", create)
    app.router.add_get("/api/v1/broadcasts", listing)
    app.router.add_get("/api/v1/broadcasts/{job_id}", get)
    app.router.add_post("/api/v1/broadcasts/{job_id}/cancel", action("cancel"))
    app.router.add_post("/api/v1/broadcasts/{job_id}/resume", action("resume"))
