"""Members: /admin/members (search) and /admin/members/{user_id} (a member's page: points, tier, referrals both
ways, the paged ledger, coupons, their audit trail, and for roles that may adjust, the adjustment form).

POST /admin/members/{user_id} adjusts points (fields points, reason, and op: a token the form carries, so a
double submit adjusts once), through the same program.adjust and audit entry as the admin API, audited as
"web:EMAIL". Staff adjust within [dashboard] staff_adjust_limit; owners by any amount.
POST /admin/members/{user_id}/coupons/{token} redeems a coupon, as the chat's クーポン使用 does.
"""
from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from aiohttp import web

from bot.web.dashboard import auth
from bot.web.dashboard.render import language, refusal, render
from rewards import audit as audit_log
from rewards import member_search
from rewards.errors import ProgramError
from rewards.names import masked_label

log = logging.getLogger(__name__)

NAV = [("/admin/members", "dash_nav_members", "read")]
USER_ID = re.compile(r"U[0-9a-f]{32}")
OP = re.compile(r"[A-Za-z0-9_-]{16,64}")
POINTS = re.compile(r"[+-]?[0-9]{1,9}")
COUPON_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")
MAX_POINTS = 10_000_000  # as the admin API
MAX_REASON = 500
LEDGER_PAGE = 20
# ledger kinds whose note people wrote (an adjustment's reason); other notes are ids (a claim, an event)
NOTED_KINDS = ("adjustment", "import")
AUDIT_SHOWN = 20


def form_token() -> str:
    """The op id a form carries: every submit of the same form is the same operation."""
    return secrets.token_urlsafe(18)


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 100_000 else 1


def _uid(request: web.Request) -> str | None:
    uid = request.match_info["user_id"]
    return uid if USER_ID.fullmatch(uid) else None


async def _row(request: web.Request, uid: str, names: dict[str, str]) -> dict[str, Any] | None:
    view = await auth.services(request).program.member(uid)
    if view is None:
        return None
    return {"user_id": uid, "name": names.get(uid), "label": masked_label(uid), "code": view.code,
            "points": view.points, "tier": view.tier, "blocked": view.blocked}


@auth.requires("read")
async def search_page(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    query = request.query.get("q", "").strip()[:member_search.MAX_QUERY]
    rows: list[dict[str, Any]] = []
    if query:
        program = auth.services(request).program
        uids = await member_search.search(program, query)
        names = await member_search.nicknames(program, uids)
        rows = [row for uid in uids if (row := await _row(request, uid, names)) is not None]
        if len(rows) == 1 and rows[0]["user_id"] == query:
            raise web.HTTPSeeOther(f"/admin/members/{query}")
    return render(request, staff, "members.html", query=query, rows=rows)


async def _member_page(request: web.Request, staff: auth.Staff, uid: str, *, status: int = 200,
                       error: str | None = None, error_values: dict[str, Any] | None = None,
                       entered: dict[str, str] | None = None) -> web.Response:
    s = auth.services(request)
    program, catalog = s.program, s.catalog
    view = await program.member(uid)
    if view is None:
        return await refusal(request, staff, 404)
    names = await member_search.nicknames(program, [uid])
    referral_status, referred_by_referrer = await program.referrals.of_friend(uid)
    made = await program.referral_status(uid, shown=50)
    friend_names = await member_search.nicknames(program, [f.user_id for f in made.friends])
    entries = list(reversed(await program.ledger(uid)))
    page = _page_number(request)
    pages = max(1, (len(entries) + LEDGER_PAGE - 1) // LEDGER_PAGE)
    page = min(page, pages)
    coupons = await catalog.coupons(uid, limit=50)
    now = catalog.now_ms()
    trail, _ = await audit_log.read(s.redis, limit=AUDIT_SHOWN, newest_first=True,
                                    where=audit_log.AuditFilter(member=uid))
    rules = program.rules
    return render(
        request, staff, "member.html", status=status, uid=uid, view=view, name=names.get(uid),
        label=masked_label(uid), customer_id=await program.links.customer_of(uid),
        referred_by=referred_by_referrer, referred_status=referral_status, made=made, friend_names=friend_names,
        masked=masked_label, ledger=entries[(page - 1) * LEDGER_PAGE:page * LEDGER_PAGE], ledger_total=len(entries),
        page=page, pages=pages, noted_kinds=NOTED_KINDS,
        coupons=[{"c": c, "expired": c.expired(now), "name": _reward_name(rules, c.reward_id, request),
                  "last_day": catalog.last_day(c)} for c in coupons],
        trail=trail, may_adjust=staff.may("adjust_points"), may_redeem=staff.may("redeem_coupon"),
        limit=None if staff.role == "owner" else rules.staff_adjust_limit, op=form_token(),
        error=error, error_values=error_values or {}, entered=entered or {}, done=request.query.get("done"))


def _reward_name(rules: Any, reward_id: str, request: web.Request) -> str:
    reward = rules.reward(reward_id)
    if reward is None:
        return reward_id
    return str(reward.name.get(language(request)) or reward.name["ja"])


@auth.requires("read")
async def member_page(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    uid = _uid(request)
    if uid is None:
        return await refusal(request, staff, 404)
    return await _member_page(request, staff, uid)


class Refused(Exception):
    """A form refused: the text's key and its values."""

    def __init__(self, key: str, **values: Any):
        super().__init__(key)
        self.key, self.values = key, values


def check_adjustment(form: Any, role: str, staff_limit: int) -> tuple[int, str, str]:
    """(points, reason, op) from the form; Refused when a field is wrong or staff go past their limit."""
    raw_points = str(form.get("points", "")).strip()
    reason = str(form.get("reason", "")).strip()
    op = str(form.get("op", ""))
    if not POINTS.fullmatch(raw_points) or int(raw_points) == 0 or abs(int(raw_points)) > MAX_POINTS:
        raise Refused("dash_adjust_bad_points", max=f"{MAX_POINTS:,}")
    points = int(raw_points)
    if role != "owner" and abs(points) > staff_limit:
        raise Refused("dash_adjust_over_limit", limit=f"{staff_limit:,}")
    if not 1 <= len(reason) <= MAX_REASON:
        raise Refused("dash_adjust_bad_reason", max=MAX_REASON)
    if not OP.fullmatch(op):
        raise Refused("dash_form_stale")
    return points, reason, op


@auth.requires("adjust_points")
async def adjust(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    uid = _uid(request)
    s = auth.services(request)
    if uid is None or not await s.program.exists(uid):
        return await refusal(request, staff, 404)
    form = await request.post()
    try:
        points, reason, op = check_adjustment(form, staff.role, s.program.rules.staff_adjust_limit)
    except Refused as refused:
        log.info("dashboard: %s adjustment of %s refused: %s", staff.email, uid, refused.key)
        return await _member_page(request, staff, uid, status=400, error=refused.key, error_values=refused.values,
                                  entered={"points": str(form.get("points", ""))[:12],
                                           "reason": str(form.get("reason", ""))[:MAX_REASON]})
    op_id = f"adjust:web:{op}"
    written, balance = await s.program.adjust(uid, points, reason, staff.who, op_id)
    # also when this form was submitted before: the first submit may have failed before its audit entry
    await s.program.audit_adjustment(staff.who, uid, op_id, points)
    log.info("dashboard: %s adjusted %s by %d (%s): balance %d", staff.email, uid, points,
             "applied" if written else "a repeat", balance)
    raise web.HTTPSeeOther(f"/admin/members/{uid}?done={'adjusted' if written else 'repeat'}#adjust")


@auth.requires("redeem_coupon")
async def redeem(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    uid, token = _uid(request), request.match_info["token"]
    s = auth.services(request)
    found = await s.catalog.coupon(token) if COUPON_TOKEN.fullmatch(token) else None
    if uid is None or found is None or found[0] != uid:
        return await refusal(request, staff, 404)
    form = await request.post()
    op = str(form.get("op", ""))
    if not OP.fullmatch(op):
        return await _member_page(request, staff, uid, status=400, error="dash_form_stale")
    try:
        _, coupon = await s.catalog.use_coupon(token, f"coupon:web:{op}")
    except ProgramError as refused:
        log.info("dashboard: %s could not redeem coupon of %s: %s", staff.email, uid, refused.code)
        return await _member_page(request, staff, uid, status=409, error=f"dash_coupon_{refused.code}")
    # once per coupon, as the chat's and the API's redeeming: a retry writes it only if the first did not
    await s.program.audit(staff.who, "use_coupon", uid, op=f"use_coupon:{token}", token=token,
                          reward=coupon.reward_id, code=coupon.code, claim=coupon.claim_id, before="unused",
                          after="used")
    raise web.HTTPSeeOther(f"/admin/members/{uid}?done=coupon_used#coupons")


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/members", search_page)
    app.router.add_get("/admin/members/{user_id}", member_page)
    app.router.add_post("/admin/members/{user_id}", adjust)
    app.router.add_post("/admin/members/{user_id}/coupons/{token}", redeem)
