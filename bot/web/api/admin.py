"""The admin API (/api/v1/*): bearer ADMIN_TOKEN, JSON in and out, errors as {"error": {"code", "message"}}."""
from __future__ import annotations

import calendar
import hmac
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot import notices
from bot.broadcasts import service as broadcasts
from bot.services import Services
from rewards import stats as stats_report
from rewards.errors import ProgramError

log = logging.getLogger(__name__)

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
ORDER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
MAX_AMOUNT_YEN = 100_000_000
BIRTHDAY = re.compile(r"^(?:\d{4}-)?(\d{2})-(\d{2})$")


class BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def auth_middleware(services_key: web.AppKey[Services]) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return error(401, "UNAUTHENTICATED", "send Authorization: Bearer <ADMIN_TOKEN>")
        expected = request.app[services_key].settings.admin_token
        if not expected:
            return error(403, "ADMIN_API_DISABLED", "ADMIN_TOKEN is not set, so the admin API refuses every call")
        if not hmac.compare_digest(header[7:].strip().encode(), expected.encode()):
            log.warning("admin API call with a wrong token from %s: %s %s", request.remote, request.method,
                        request.path)
            return error(403, "FORBIDDEN", "the bearer token is wrong")
        try:
            return await handler(request)
        except BadRequest as exc:
            log.info("admin API refused %s %s: %s", request.method, request.path, exc.message)
            return error(exc.status, exc.code, exc.message)
        except ProgramError as exc:
            status = 404 if exc.code.startswith("UNKNOWN_") else 409
            log.info("admin API refused %s %s: %s", request.method, request.path, exc.code)
            return error(status, exc.code, exc.message)

    return middleware


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("INVALID_JSON", "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("INVALID_BODY", "the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if value is None:
        raise BadRequest("MISSING_FIELD", f"{name} is required")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest("INVALID_FIELD", f"{name} must be {'an integer' if kind is int else 'a string'}")
    return value


def _user_id(value: str) -> str:
    if not USER_ID.fullmatch(value):
        raise BadRequest("INVALID_USER_ID", "user_id must be a LINE user id: U followed by 32 hex digits")
    return value


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def conversions(request: web.Request) -> web.Response:
        body = await _body(request)
        order_id = _field(body, "order_id", str)
        if not ORDER_ID.fullmatch(order_id):
            raise BadRequest("INVALID_ORDER_ID", "order_id must be 1 to 128 printable ASCII characters")
        user_id = _user_id(_field(body, "user_id", str))
        amount = _field(body, "amount", int)
        if not 0 <= amount <= MAX_AMOUNT_YEN:
            raise BadRequest("INVALID_AMOUNT", f"amount must be yen between 0 and {MAX_AMOUNT_YEN}")
        occurred = _field(body, "occurred_at", str, required=False)
        at_ms = None
        if occurred is not None:
            try:
                at_ms = int(datetime.fromisoformat(occurred.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError as exc:
                raise BadRequest("INVALID_OCCURRED_AT", "occurred_at must be an ISO 8601 date-time") from exc
        fingerprint = _field(body, "fingerprint", str, required=False)
        if fingerprint is not None and not ORDER_ID.fullmatch(fingerprint):
            raise BadRequest("INVALID_FINGERPRINT", "fingerprint must be 1 to 128 printable ASCII characters "
                                                    "(send a hash, never the address or card itself)")
        s = services(request)
        purchase = await s.program.record_purchase(order_id, user_id, amount, at_ms, fingerprint)
        await notices.after_purchase(s, purchase, user_id, order_id)
        answer = purchase.answer
        referral = answer.get("referral") or None
        return web.json_response({
            "order_id": answer["order_id"], "points_awarded": answer["points_awarded"],
            "referral": {"status": referral["status"]} if referral else None})

    async def refund(request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        outcome, reversed_points = await services(request).program.refund(order_id)
        return web.json_response({"order_id": order_id, "refunded": outcome == "OK",
                                  "already_refunded": outcome == "ALREADY_REFUNDED",
                                  "points_reversed": reversed_points})

    async def member(request: web.Request) -> web.Response:
        user_id = _user_id(request.match_info["user_id"])
        view = await services(request).program.member(user_id)
        if view is None:
            return error(404, "UNKNOWN_MEMBER", "no member with that user id")
        return web.json_response({
            "user_id": view.user_id, "points": view.points, "pending_points": view.pending_points,
            "tier": view.tier, "next_tier": view.next_tier, "to_next_tier": view.to_next_tier,
            "lifetime_points": view.lifetime_points, "debt": view.debt, "blocked": view.blocked,
            "birthday": view.birthday, "gift_referral_reward": view.gift,
            "referrals": {"invited": view.referrals.invited, "pending": view.referrals.pending,
                          "completed": view.referrals.completed}})

    async def adjust(request: web.Request) -> web.Response:
        user_id = _user_id(request.match_info["user_id"])
        body = await _body(request)
        points = _field(body, "points", int)
        reason = _field(body, "reason", str).strip()
        if points == 0 or abs(points) > 10_000_000:
            raise BadRequest("INVALID_POINTS", "points must be a non-zero integer (negative to take points away)")
        if not 1 <= len(reason) <= 500:
            raise BadRequest("INVALID_REASON", "reason must be 1 to 500 characters")
        op = request.headers.get("Idempotency-Key") or body.get("operation_id") or uuid.uuid4().hex
        if not isinstance(op, str) or not 1 <= len(op) <= 128:
            raise BadRequest("INVALID_OPERATION_ID", "operation_id must be 1 to 128 characters")
        s = services(request)
        before = await s.program.member(user_id)
        written, balance = await s.program.adjust(user_id, points, reason, "admin-api", f"adjust:{op}")
        if written:
            await s.program.audit("admin-api", "adjust_points", user_id,
                                  before=before.points if before else 0, after=balance, reason=reason, op=op)
        return web.json_response({"user_id": user_id, "points": balance, "applied": written, "operation_id": op})

    async def profile(request: web.Request) -> web.Response:
        """PATCH a member: birthday ("MM-DD" or "YYYY-MM-DD", once) and gift_referral_reward (相手に譲る)."""
        user_id = _user_id(request.match_info["user_id"])
        body = await _body(request)
        s = services(request)
        if not await s.program.exists(user_id):
            return error(404, "UNKNOWN_MEMBER", "no member with that user id")
        if "birthday" in body:
            match = BIRTHDAY.match(str(body["birthday"]))
            month, day = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
            if not match or not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2024, month)[1]:
                raise BadRequest("INVALID_BIRTHDAY", "birthday must be MM-DD or YYYY-MM-DD")
            if not await s.program.set_birthday(user_id, month, day):
                raise BadRequest("BIRTHDAY_ALREADY_SET", "a birthday can be set once", status=409)
        if "gift_referral_reward" in body:
            gift = body["gift_referral_reward"]
            if not isinstance(gift, bool):
                raise BadRequest("INVALID_FIELD", "gift_referral_reward must be true or false")
            await s.program.set_gift(user_id, gift)
        await s.program.audit("admin-api", "profile", user_id, changes=json.dumps(body, ensure_ascii=False))
        return await member(request)

    async def custom_event(request: web.Request) -> web.Response:
        """POST /api/v1/events {user_id, name, event_id}: a review, a share… as the rules name them."""
        body = await _body(request)
        user_id = _user_id(_field(body, "user_id", str))
        name = _field(body, "name", str)
        event_id = _field(body, "event_id", str)
        if not ORDER_ID.match(event_id):
            raise BadRequest("INVALID_EVENT_ID", "event_id must be 1 to 128 printable ASCII characters")
        applied, points = await services(request).program.custom_event(user_id, name, event_id)
        await notices.after_custom_event(services(request), user_id, name, event_id)
        return web.json_response({"user_id": user_id, "name": name, "event_id": event_id, "applied": applied,
                                  "points_awarded": points})

    async def stats(request: web.Request) -> web.Response:
        """The running totals, and under "report" the numbers of the last `days` days (1 to 90) by day."""
        raw = request.query.get("days", "30")
        if not raw.isdigit() or not 1 <= int(raw) <= stats_report.MAX_DAYS:
            raise BadRequest("INVALID_DAYS", f"days must be a whole number from 1 to {stats_report.MAX_DAYS}")
        program = services(request).program
        return web.json_response(await program.stats() | {"report": await stats_report.report(program, int(raw))})

    app.router.add_post("/api/v1/conversions", conversions)
    app.router.add_post("/api/v1/conversions/{order_id}/refund", refund)
    app.router.add_get("/api/v1/members/{user_id}", member)
    app.router.add_post("/api/v1/members/{user_id}/adjustments", adjust)
    app.router.add_patch("/api/v1/members/{user_id}", profile)
    app.router.add_post("/api/v1/events", custom_event)
    app.router.add_get("/api/v1/stats", stats)
    broadcasts.setup_api(app, services_key, _body, BadRequest)
