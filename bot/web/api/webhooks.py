"""Outbound webhooks (Standard Webhooks; README "Outbound webhooks"): the shop registers where our events go.

    POST   /api/v1/webhooks {"url", "events": [..]}  -> 201 {"id", "secret": "whsec_…", "url", "events", …}
    GET    /api/v1/webhooks                          -> {"webhooks": [...]}: state, disabled reason; secrets masked
    PATCH  /api/v1/webhooks/{id} {"enabled": true}   -> the endpoint enabled again after it was disabled
    DELETE /api/v1/webhooks/{id}                     -> {"deleted": true}; its pending deliveries are dropped
    GET    /api/v1/webhooks/{id}/deliveries          -> {"deliveries": [...]}: every attempt, code, next try

The secret is shown once, at registration (as a payment provider does): a lost secret means a new endpoint.
"""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot.deliveries.outbound import EVENTS, MAX_ENDPOINTS, OWNER
from bot.deliveries.targets import refusal
from bot.services import Services
from bot.web.http import ApiError, field, json_body, query_int

ENDPOINT_ID = re.compile(r"ep_[0-9a-f]{24}")


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def known(request: web.Request) -> dict[str, Any]:
        endpoint_id = request.match_info["id"]
        endpoint = await services(request).outbound.endpoint(endpoint_id) if ENDPOINT_ID.fullmatch(
            endpoint_id) else None
        if endpoint is None:
            raise ApiError(404, "UNKNOWN_WEBHOOK", f"no webhook endpoint {endpoint_id[:40]!r}")
        return endpoint

    async def create(request: web.Request) -> web.Response:
        body = await json_body(request, ("url", "events"))
        url = field(body, "url", str)
        why = refusal(url)
        if why:
            raise ApiError(400, "INVALID_URL", f"url {why}")
        events = body.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise ApiError(400, "INVALID_EVENTS", f"events must be a non-empty list of event names: "
                                                  f"{', '.join(EVENTS)}")
        unknown = sorted({e for e in events if e not in EVENTS})
        if unknown:
            raise ApiError(400, "UNKNOWN_EVENT", f"unknown event(s): {', '.join(e[:40] for e in unknown[:5])}; "
                                                 f"known: {', '.join(EVENTS)}")
        outbound = services(request).outbound
        if await outbound.count() >= MAX_ENDPOINTS:
            raise ApiError(400, "TOO_MANY_WEBHOOKS", f"at most {MAX_ENDPOINTS} endpoints; delete one first")
        endpoint = await outbound.register(url, events)
        shown = outbound.view(endpoint, {})
        return web.json_response({**shown, "secret": endpoint["secret"]}, status=201)

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"webhooks": await services(request).outbound.endpoints()})

    async def update(request: web.Request) -> web.Response:
        endpoint = await known(request)
        body = await json_body(request, ("enabled",))
        if body.get("enabled") is not True:
            raise ApiError(400, "INVALID_FIELD", "send {\"enabled\": true} to enable a disabled endpoint "
                                                 "(delete it to stop its deliveries)")
        outbound = services(request).outbound
        await outbound.enable(endpoint["id"])
        return web.json_response(outbound.view(endpoint, await outbound.health()))

    async def delete(request: web.Request) -> web.Response:
        endpoint = await known(request)
        await services(request).outbound.delete(endpoint["id"])
        return web.json_response({"deleted": True, "id": endpoint["id"]})

    async def deliveries(request: web.Request) -> web.Response:
        endpoint = await known(request)
        limit = query_int(request, "limit", 100, 1, 500)
        found = await services(request).deliveries.listing(f"{OWNER}:{endpoint['id']}", limit)
        return web.json_response({"deliveries": found})

    app.router.add_post("/api/v1/webhooks", create)
    app.router.add_get("/api/v1/webhooks", listing)
    app.router.add_patch("/api/v1/webhooks/{id}", update)
    app.router.add_delete("/api/v1/webhooks/{id}", delete)
    app.router.add_get("/api/v1/webhooks/{id}/deliveries", deliveries)
