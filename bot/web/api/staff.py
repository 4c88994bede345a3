"""The rest of the admin API: member search and ledgers, referrals (list, approve, void), the audit log,
CSV exports, staff, and the OpenAPI description.

Same contract as bot/admin_api.py (its middleware): bearer ADMIN_TOKEN, JSON in and out, errors as
{"error": {"code", "message"}}; requests are checked before anything is read or written, and every change
is written to the audit log with who ("api"), what and before/after.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot import notices
from bot.chat import staff
from bot.richmenu.staff import link_staff_menu, unlink_staff_menu
from bot.services import Services
from bot.web.api.admin import BadRequest, _user_id
from bot.web.api.openapi import document
from rewards import codes
from rewards import keys as rkeys
from rewards.lookup import find_member
from rewards.review import STATUSES, ReferralReview

log = logging.getLogger(__name__)

WHO = "api"
MAX_PAGE = 500
STREAM_ID = r"\d{1,20}-\d{1,20}"


# ---- a tiny request schema helper --------------------------------------------------------------
def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"INVALID_{name.upper()}", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def query_str(request: web.Request, name: str, *, required: bool = False, max_length: int = 200,
              choices: Iterable[str] | None = None) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw.strip() == "":
        if required:
            raise BadRequest("MISSING_PARAMETER", f"the query parameter {name} is required")
        return None
    raw = raw.strip()
    if len(raw) > max_length:
        raise BadRequest(f"INVALID_{name.upper()}", f"{name} must be at most {max_length} characters")
    allowed = list(choices) if choices is not None else None
    if allowed is not None and raw not in allowed:
        raise BadRequest(f"INVALID_{name.upper()}", f"{name} must be one of {', '.join(allowed)}")
    return raw


async def optional_body(request: web.Request, allowed: dict[str, type]) -> dict[str, Any]:
    """A body that may be absent; when present: a JSON object with only these fields, of these types."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest("INVALID_JSON", "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("INVALID_BODY", "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest("UNKNOWN_FIELD", f"unknown field(s): {', '.join(unknown)}")
    for name, kind in allowed.items():
        if name in body and not isinstance(body[name], kind):
            raise BadRequest("INVALID_FIELD", f"{name} must be a {kind.__name__}")
    return body


def page(request: web.Request, default: int = 50) -> tuple[int, int]:
    return query_int(request, "offset", 0, 0, 10**9), query_int(request, "limit", default, 1, MAX_PAGE)


# ---- shapes ---------------------------------------------------------------------------------
def _iso(services: Services, at_ms: int | str | None) -> str | None:
    if not at_ms:
        return None
    return datetime.fromtimestamp(int(at_ms) / 1000, services.program.rules.timezone).isoformat(timespec="seconds")


def _referral(services: Services, record: dict[str, str]) -> dict[str, Any]:
    return {"friend_id": record["friend"], "referrer_id": record.get("referrer"), "status": record.get("status"),
            "code": record.get("code"), "order_id": record.get("order"),
            "created_at": _iso(services, record.get("created_at")),
            "completed_at": _iso(services, record.get("completed_at")),
            "review_reason": record.get("review_reason"), "void_reason": record.get("void_reason"),
            "decided_by": record.get("approved_by") or record.get("voided_by")}


def _entry(services: Services, entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry.get("id"), "operation_id": entry.get("op"), "kind": entry.get("kind"),
            "rule": entry.get("rule"), "at": _iso(services, entry.get("at")), "delta": entry.get("delta", 0),
            "balance": entry.get("balance"), "state": entry.get("state", "done"), "note": entry.get("note", "")}


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

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
        user_id = _user_id(request.match_info["user_id"])
        offset, limit = page(request)
        s = services(request)
        if not await s.program.exists(user_id):
            raise BadRequest("UNKNOWN_MEMBER", "no member with that user id", status=404)
        entries = await s.program.ledger(user_id)
        newest = list(reversed(entries))
        return web.json_response({"user_id": user_id, "total": len(entries), "offset": offset, "limit": limit,
                                  "entries": [_entry(s, e) for e in newest[offset:offset + limit]]})

    async def referrals(request: web.Request) -> web.Response:
        """GET /api/v1/referrals?status=pending|completed|refused|review (refused: voided)."""
        status = query_str(request, "status", required=True, choices=STATUSES)
        assert status is not None
        offset, limit = page(request)
        s = services(request)
        found = await ReferralReview(s.program).referrals(status)
        return web.json_response({"status": status, "total": len(found), "offset": offset, "limit": limit,
                                  "referrals": [_referral(s, r) for r in found[offset:offset + limit]]})

    async def decide(request: web.Request, approve: bool) -> web.Response:
        friend = _user_id(request.match_info["friend_id"])
        body = await optional_body(request, {"reason": str})
        reason = str(body.get("reason", "")).strip()
        if len(reason) > 500:
            raise BadRequest("INVALID_REASON", "reason must be at most 500 characters")
        s = services(request)
        review = ReferralReview(s.program)
        before = await review.referral(friend)
        decision = await (review.approve(friend, WHO) if approve else review.void(friend, WHO))
        if decision.changed:
            await s.program.audit(WHO, "approve_referral" if approve else "void_referral", friend,
                                  referrer=decision.referrer, before=(before or {}).get("status", ""),
                                  after=decision.status, reason=reason)
        await notices.after_review_decision(s, decision)
        return web.json_response({"friend_id": friend, "referrer_id": decision.referrer, "status": decision.status,
                                  "changed": decision.changed})

    async def approve(request: web.Request) -> web.Response:
        return await decide(request, approve=True)

    async def void(request: web.Request) -> web.Response:
        return await decide(request, approve=False)

    async def audit(request: web.Request) -> web.Response:
        """GET /api/v1/audit?after=<id>&limit=: oldest first from after the cursor; `next` pages on."""
        after = query_str(request, "after", max_length=45)
        if after is not None and not re.fullmatch(STREAM_ID, after):
            raise BadRequest("INVALID_AFTER", "after must be an audit entry id as returned (e.g. 1700000000000-0)")
        limit = query_int(request, "limit", 100, 1, MAX_PAGE)
        s = services(request)
        rows = await s.redis.xrange(rkeys.AUDIT, min=f"({after}" if after else "-", max="+", count=limit)
        entries = []
        for entry_id, fields in rows:
            row = {k.decode(): v.decode() for k, v in fields.items()}
            entries.append({"id": entry_id.decode(), **row, "at": _iso(s, row.get("at"))})
        return web.json_response({"entries": entries, "next": entries[-1]["id"] if len(entries) == limit else None})

    async def stream_csv(request: web.Request, name: str, header: list[str], rows: Any) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                               "Content-Disposition": f'attachment; filename="{name}"'})
        await response.prepare(request)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        async for row in rows:
            writer.writerow(row)
            if buffer.tell() > 64_000:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
        await response.write(buffer.getvalue().encode())
        await response.write_eof()
        return response

    async def export_members(request: web.Request) -> web.StreamResponse:
        s = services(request)
        ids = await s.program.member_ids()

        async def rows() -> Any:
            for uid in ids:
                view = await s.program.member(uid)
                if view is None:
                    continue
                yield [uid, view.code or "", view.points, view.pending_points, view.lifetime_points, view.tier,
                       view.debt, int(view.blocked), view.lang or "", view.referrals.invited,
                       view.referrals.completed]

        return await stream_csv(request, "members.csv", [
            "user_id", "code", "points", "pending_points", "lifetime_points", "tier", "debt", "blocked", "lang",
            "referrals_invited", "referrals_completed"], rows())

    async def export_ledger(request: web.Request) -> web.StreamResponse:
        s = services(request)
        ids = await s.program.member_ids()

        async def rows() -> Any:
            for uid in ids:
                for e in await s.program.ledger(uid):
                    yield [uid, e.get("id"), e.get("op"), e.get("kind"), e.get("rule"), _iso(s, e.get("at")),
                           e.get("delta", 0), e.get("balance"), e.get("state", "done"), e.get("note", "")]

        return await stream_csv(request, "ledger.csv", [
            "user_id", "entry_id", "operation_id", "kind", "rule", "at", "delta", "balance", "state", "note"], rows())

    async def staff_members(request: web.Request) -> web.Response:
        configured, added = await staff.staff_list(services(request))
        return web.json_response({"configured": configured, "added": added})

    async def add_staff(request: web.Request) -> web.Response:
        user_id = _user_id(request.match_info["user_id"])
        s = services(request)
        added = await staff.add_staff(s, user_id)
        if added:
            await s.program.audit(WHO, "add_staff", user_id, before="customer", after="staff")
        await link_staff_menu(s.line, s.redis, user_id)  # best effort: logged when LINE refuses
        return web.json_response({"user_id": user_id, "staff": True, "changed": added})

    async def remove_staff(request: web.Request) -> web.Response:
        user_id = _user_id(request.match_info["user_id"])
        s = services(request)
        if user_id in s.settings.staff_user_ids:
            raise BadRequest("CONFIGURED_STAFF", "this user is staff through STAFF_USER_IDS; change it there",
                             status=409)
        removed = await staff.remove_staff(s, user_id)
        if removed:
            await s.program.audit(WHO, "remove_staff", user_id, before="staff", after="customer")
        await unlink_staff_menu(s.line, s.redis, user_id)
        return web.json_response({"user_id": user_id, "staff": False, "changed": removed})

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document())

    app.router.add_get("/api/v1/members", search_members)
    app.router.add_get("/api/v1/members/{user_id}/ledger", ledger)
    app.router.add_get("/api/v1/referrals", referrals)
    app.router.add_post("/api/v1/referrals/{friend_id}/approve", approve)
    app.router.add_post("/api/v1/referrals/{friend_id}/void", void)
    app.router.add_get("/api/v1/audit", audit)
    app.router.add_get("/api/v1/exports/members.csv", export_members)
    app.router.add_get("/api/v1/exports/ledger.csv", export_ledger)
    app.router.add_get("/api/v1/staff", staff_members)
    app.router.add_post("/api/v1/staff/{user_id}", add_staff)
    app.router.add_delete("/api/v1/staff/{user_id}", remove_staff)
    app.router.add_get("/api/v1/openapi.json", openapi)
