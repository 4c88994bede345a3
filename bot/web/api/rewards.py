"""Admin API for the reward catalog: stock, code pools and redeeming coupons at the counter.

Every change is written to the audit stream.
"""
from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from bot import notices
from bot.services import Services
from bot.web.http import ApiError, field, json_body, shop_time
from rewards.coupons import Coupon
from rewards.inventory import POOL_CODE, Stock

MAX_STOCK_CHANGE = 1_000_000
MAX_CODES_PER_UPLOAD = 10_000


def _stock(stock: Stock, cost: int, issue: str) -> dict[str, Any]:
    return {"id": stock.reward_id, "cost": cost, "issue": issue, "stock": stock.limit, "left": stock.left,
            "claimed": stock.claimed, "held": stock.held, "pool": stock.pool}


def _coupon(services: Services, uid: str, coupon: Coupon) -> dict[str, Any]:
    return {"token": coupon.token, "user_id": uid, "reward": coupon.reward_id, "code": coupon.code,
            "issue": coupon.issue, "issued_at": shop_time(services, coupon.issued_at_ms),
            "expires_at": shop_time(services, coupon.expires_at_ms), "used_at": shop_time(services, coupon.used_at_ms),
            "used": coupon.used, "expired": coupon.expired(services.catalog.now_ms())}


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def rewards(request: web.Request) -> web.Response:
        """GET /api/v1/rewards: every reward of the rules with its stock."""
        s = services(request)
        return web.json_response({"rewards": [
            _stock(await s.catalog.stock(r), r.cost, r.issue) | {"name": r.name}
            for r in s.program.rules.rewards]})

    async def add_stock(request: web.Request) -> web.Response:
        """POST /api/v1/rewards/{id}/stock {"add": n}: n may be negative, never below what is taken."""
        body = await json_body(request, ("add",))
        add = field(body, "add", int)
        if add == 0 or abs(add) > MAX_STOCK_CHANGE:
            raise ApiError(400, "INVALID_ADD", f"add must be a non-zero integer of at most {MAX_STOCK_CHANGE:,}")
        s = services(request)
        reward_id = request.match_info["reward_id"]
        _, stock = await s.catalog.change_stock(reward_id, add, "admin-api")
        await notices.after_stock_added(s, reward_id, add, stock)
        reward = s.program.rules.reward(reward_id)
        assert reward is not None
        return web.json_response(_stock(stock, reward.cost, reward.issue))

    async def add_codes(request: web.Request) -> web.Response:
        """POST /api/v1/rewards/{id}/codes {"codes": [..]}: codes join the pool; ones seen before are skipped."""
        body = await json_body(request, ("codes",))
        codes = body.get("codes")
        if not isinstance(codes, list) or not 1 <= len(codes) <= MAX_CODES_PER_UPLOAD:
            raise ApiError(400, "INVALID_CODES", f"codes must be a list of 1 to {MAX_CODES_PER_UPLOAD:,} strings")
        bad = [c for c in codes if not isinstance(c, str) or not POOL_CODE.match(c)]
        if bad:
            raise ApiError(400, "INVALID_CODE", f"a code is 1 to 64 printable ASCII characters without spaces: {bad[0]!r}")
        s = services(request)
        reward_id = request.match_info["reward_id"]
        unique = list(dict.fromkeys(codes))
        added, pool = await s.catalog.add_codes(reward_id, unique)
        await s.program.audit("admin-api", "add_codes", "", reward=reward_id, uploaded=len(codes), added=added,
                              pool=pool)
        await notices.after_codes_added(s, reward_id, added, pool)  # a pool reward's stock is its codes
        return web.json_response({"id": reward_id, "uploaded": len(codes), "added": added,
                                  "skipped": len(codes) - added, "pool": pool})

    async def coupon(request: web.Request) -> web.Response:
        """GET /api/v1/coupons/{token}: what a scanned coupon is, and whether it can still be used."""
        s = services(request)
        found = await s.catalog.coupon(request.match_info["token"])
        if found is None:
            raise ApiError(404, "UNKNOWN_COUPON", "no coupon with that token")
        return web.json_response(_coupon(s, *found))

    async def use(request: web.Request) -> web.Response:
        """POST /api/v1/coupons/{token}/use: staff redeem a coupon, once (again: 409 ALREADY_USED). A request
        repeated with the same Idempotency-Key is answered as the first (200), so a client may retry one that
        failed half-way and the use is still audited once."""
        op = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        if not 1 <= len(op) <= 128:
            raise ApiError(400, "INVALID_OPERATION_ID", "Idempotency-Key must be 1 to 128 characters")
        s = services(request)
        token = request.match_info["token"]
        uid, used = await s.catalog.use_coupon(token, f"coupon:api:{op}")
        await s.program.audit("admin-api", "use_coupon", uid, op=f"use_coupon:{token}", token=token,
                              reward=used.reward_id, code=used.code, claim=used.claim_id)
        return web.json_response(_coupon(s, uid, used))

    app.router.add_get("/api/v1/rewards", rewards)
    app.router.add_post("/api/v1/rewards/{reward_id}/stock", add_stock)
    app.router.add_post("/api/v1/rewards/{reward_id}/codes", add_codes)
    app.router.add_get("/api/v1/coupons/{token}", coupon)
    app.router.add_post("/api/v1/coupons/{token}/use", use)
