"""Members: look one up (by user id, or by invite code), their ledger, manual adjustments and the profile."""
from __future__ import annotations

import calendar
import json
import re
import uuid
from datetime import date, datetime
from typing import Any

from aiohttp import web

from bot.services import Services
from bot.web.http import ApiError, field, json_body, page, query_str, shop_time, valid_user_id
from rewards import codes
from rewards.lookup import find_member

BIRTHDAY = re.compile(r"(?:([0-9]{4})-)?([0-9]{2})-([0-9]{2})")  # fullmatch; ASCII digits only
OLDEST_BIRTH_YEAR = 1900
ADJUSTMENT_FIELDS = ("points", "reason", "operation_id")
PROFILE_FIELDS = ("birthday", "gift_referral_reward")


def birthday(value: object, today: date) -> tuple[int, int]:
    """(month, day) of "MM-DD" or "YYYY-MM-DD": a real date (Feb 29 only in a leap year when a year is given) from
    1900 to today; 400 INVALID_BIRTHDAY otherwise. Only month and day are kept."""
    match = BIRTHDAY.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        year = int(match.group(1)) if match.group(1) else None
        month, day = int(match.group(2)), int(match.group(3))
        if year is None and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(2024, month)[1]:
            return month, day
        if year is not None and OLDEST_BIRTH_YEAR <= year <= today.year:
            try:
                if date(year, month, day) <= today:
                    return month, day
            except ValueError:
                pass
    raise ApiError(400, "INVALID_BIRTHDAY", f"birthday must be MM-DD or YYYY-MM-DD, a real date from "
                                            f"{OLDEST_BIRTH_YEAR} to today")


def _entry(services: Services, entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry.get("id"), "operation_id": entry.get("op"), "kind": entry.get("kind"),
            "rule": entry.get("rule"), "at": shop_time(services, entry.get("at")), "delta": entry.get("delta", 0),
            "balance": entry.get("balance"), "state": entry.get("state", "done"), "note": entry.get("note", "")}


def friend_coupon(code: str | None) -> dict[str, str] | None:
    """The welcome coupon a referral gave the member: null, or {"code"}."""
    return {"code": code} if code is not None else None


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def member(request: web.Request) -> web.Response:
        user_id = valid_user_id(request.match_info["user_id"])
        view = await services(request).program.member(user_id)
        if view is None:
            raise ApiError(404, "UNKNOWN_MEMBER", "no member with that user id")
        return web.json_response({
            "user_id": view.user_id, "points": view.points, "pending_points": view.pending_points,
            "tier": view.tier, "next_tier": view.next_tier, "to_next_tier": view.to_next_tier,
            "lifetime_points": view.lifetime_points, "debt": view.debt, "blocked": view.blocked,
            "birthday": view.birthday, "gift_referral_reward": view.gift,
            "referrals": {"invited": view.referrals.invited, "pending": view.referrals.pending,
                          "completed": view.referrals.completed},
            "friend_coupon": friend_coupon(await services(request).program.friend_coupon(user_id))})

    async def adjust(request: web.Request) -> web.Response:
        user_id = valid_user_id(request.match_info["user_id"])
        body = await json_body(request, ADJUSTMENT_FIELDS)
        points = field(body, "points", int)
        reason = field(body, "reason", str).strip()
        if points == 0 or abs(points) > 10_000_000:
            raise ApiError(400, "INVALID_POINTS", "points must be a non-zero integer (negative to take points away)")
        if not 1 <= len(reason) <= 500:
            raise ApiError(400, "INVALID_REASON", "reason must be 1 to 500 characters")
        op = request.headers.get("Idempotency-Key") or body.get("operation_id") or uuid.uuid4().hex
        if not isinstance(op, str) or not 1 <= len(op) <= 128:
            raise ApiError(400, "INVALID_OPERATION_ID", "operation_id must be 1 to 128 characters")
        s = services(request)
        written, balance = await s.program.adjust(user_id, points, reason, "admin-api", f"adjust:{op}")
        # also when a request with this key adjusted before: it may have failed before its audit entry
        await s.program.audit_adjustment("admin-api", user_id, f"adjust:{op}", points)
        return web.json_response({"user_id": user_id, "points": balance, "applied": written, "operation_id": op})

    async def profile(request: web.Request) -> web.Response:
        """PATCH a member: birthday ("MM-DD" or "YYYY-MM-DD", once) and gift_referral_reward (相手に譲る)."""
        user_id = valid_user_id(request.match_info["user_id"])
        body = await json_body(request, PROFILE_FIELDS)
        s = services(request)
        # every field is checked before the first write: one bad field changes nothing
        today = datetime.fromtimestamp(s.program.now_ms() / 1000, s.program.rules.timezone).date()
        month_day = birthday(body["birthday"], today) if "birthday" in body else None
        gift = body.get("gift_referral_reward")
        if "gift_referral_reward" in body and not isinstance(gift, bool):
            raise ApiError(400, "INVALID_FIELD", "gift_referral_reward must be true or false")
        if not await s.program.exists(user_id):
            raise ApiError(404, "UNKNOWN_MEMBER", "no member with that user id")
        if month_day is not None and not await s.program.set_birthday(user_id, *month_day):
            raise ApiError(409, "BIRTHDAY_ALREADY_SET", "a birthday can be set once")
        if isinstance(gift, bool):
            await s.program.set_gift(user_id, gift)
        await s.program.audit("admin-api", "profile", user_id, changes=json.dumps(body, ensure_ascii=False))
        return await member(request)

    async def search_members(request: web.Request) -> web.Response:
        """GET /api/v1/members?code=: by invite code (or link, or user id; a member QR token later)."""
        query = query_str(request, "code", required=True, max_length=300)
        assert query is not None
        s = services(request)
        uid = await find_member(s.program, query)
        found = []
        if uid is not None:
            view = await s.program.member(uid)
            if view is not None:
                found.append({"user_id": uid, "code": view.code, "points": view.points,
                              "pending_points": view.pending_points, "tier": view.tier, "blocked": view.blocked,
                              "referrals": {"invited": view.referrals.invited, "pending": view.referrals.pending,
                                            "completed": view.referrals.completed}})
        return web.json_response({"code": codes.normalise(query), "members": found})

    async def ledger(request: web.Request) -> web.Response:
        """GET /api/v1/members/{user_id}/ledger?offset=&limit=: entries, newest first."""
        user_id = valid_user_id(request.match_info["user_id"])
        offset, limit = page(request)
        s = services(request)
        if not await s.program.exists(user_id):
            raise ApiError(404, "UNKNOWN_MEMBER", "no member with that user id")
        entries = await s.program.ledger(user_id)
        newest = list(reversed(entries))
        return web.json_response({"user_id": user_id, "total": len(entries), "offset": offset, "limit": limit,
                                  "entries": [_entry(s, e) for e in newest[offset:offset + limit]]})

    app.router.add_get("/api/v1/members/{user_id}", member)
    app.router.add_post("/api/v1/members/{user_id}/adjustments", adjust)
    app.router.add_patch("/api/v1/members/{user_id}", profile)
    app.router.add_get("/api/v1/members", search_members)
    app.router.add_get("/api/v1/members/{user_id}/ledger", ledger)
