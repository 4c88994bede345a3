"""/admin/referrals: the review queue with its evidence, and staff's decision on each referral in it.

The list and the evidence come from rewards/review.py (ReferralReview), as the admin API's /api/v1/referrals;
a decision goes through the same ReferralReview.approve / void (decided once in review_decide.lua, audited once
per referral) under the staff member's own name ("web:EMAIL"), then bot.notices.after_review_decision as the API
does: its pushes carry retry keys fixed by the referral, so a decision sent twice tells each member once.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from bot import notices
from bot.services import Services
from bot.web.dashboard import auth
from bot.web.dashboard.render import refusal, render
from bot.web.http import USER_ID
from rewards.errors import ProgramError
from rewards.review import Evidence, ReferralReview

NAV = [("/admin/referrals", "ops_nav_referrals", "read")]
TABS = ("review", "pending", "completed", "voided")  # the statuses the list can show, the queue first
SHOWN = 100  # rows on one list (the queue is short; the other states are for looking up)
MAX_REASON = 500
ERRORS = ("NOT_IN_REVIEW", "NOT_VOIDABLE", "UNKNOWN_REFERRAL", "INVALID_REASON")  # shown back by ?error=
DONE = ("approve", "void", "already", "ring_cleared")

log = logging.getLogger(__name__)


def span(t: Callable[..., str], ms: int | None) -> str:
    """A duration as people read it: minutes under 2 hours, hours under 2 days, else days."""
    if ms is None:
        return ""
    minutes = max(0, ms) // 60_000
    if minutes < 120:
        return t("ops_span_minutes", n=minutes)
    if minutes < 48 * 60:
        return t("ops_span_hours", n=minutes // 60)
    return t("ops_span_days", n=round(minutes / 1440, 1))


@auth.requires("read")
async def queue(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """GET /admin/referrals?status=review|pending|completed|voided: the referrals in that state, newest first."""
    status = request.query.get("status", "review")
    if status not in TABS:
        status = "review"
    review = ReferralReview(auth.services(request).program)
    found = await review.referrals(status)
    shown = [e for e in await asyncio.gather(*(review.evidence(r["friend"]) for r in found[:SHOWN])) if e]
    return render(request, staff, "referrals.html", shown_status=status, tabs=TABS, rows=shown,
                  more=max(0, len(found) - SHOWN), span=span)


@auth.requires("read")
async def referral(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """GET /admin/referrals/{friend}: the evidence, and the decision forms while one can be taken."""
    friend = request.match_info["friend"]
    evidence = await ReferralReview(auth.services(request).program).evidence(friend) \
        if USER_ID.fullmatch(friend) else None
    if evidence is None:
        return await refusal(request, staff, 404)
    done = request.query.get("done")
    error = request.query.get("error")
    return render(request, staff, "referral.html", e=evidence, span=span,
                  done=done if done in DONE else None, error=error if error in ERRORS else None,
                  may_decide=staff.may("decide_review"), **_choices(evidence))


def _choices(evidence: Evidence) -> dict[str, bool]:
    """Which decisions the referral's state still allows (the script decides anyway: this is what is shown). A
    referral only flagged as part of a ring ([rings] mode "flag") is "approved" by clearing its flag."""
    return {"can_approve": evidence.status == "review" or evidence.flagged_only,
            "can_void": evidence.status in ("review", "pending")}


async def _decide(request: web.Request, staff: auth.Staff, approve: bool) -> web.StreamResponse:
    friend = request.match_info["friend"]
    if not USER_ID.fullmatch(friend):
        return await refusal(request, staff, 404)
    back = f"/admin/referrals/{friend}"
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    if len(reason) > MAX_REASON:
        raise web.HTTPSeeOther(f"{back}?error=INVALID_REASON")
    s: Services = auth.services(request)
    review = ReferralReview(s.program)
    if approve and await review.flagged_only(friend):  # as the API: flag mode's approval clears the flag, pays none
        await review.dismiss_ring(friend, staff.who)
        raise web.HTTPSeeOther(f"{back}?done=ring_cleared")
    try:
        decision = await (review.approve(friend, staff.who, reason=reason) if approve
                          else review.void(friend, staff.who, reason=reason))
    except ProgramError as exc:
        log.info("dashboard: %s could not %s the referral of %s: %s", staff.email,
                 "approve" if approve else "void", friend, exc.code)
        raise web.HTTPSeeOther(f"{back}?error={exc.code if exc.code in ERRORS else 'UNKNOWN_REFERRAL'}") from exc
    # as the API: each push is keyed by the referral, so a second press (or a retry) tells nobody twice
    await notices.after_review_decision(s, decision)
    done = ("approve" if approve else "void") if decision.changed else "already"
    raise web.HTTPSeeOther(f"{back}?done={done}")


@auth.requires("decide_review")
async def approve(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """POST /admin/referrals/{friend}/approve (form: csrf, reason): the referral completes, both sides paid once."""
    return await _decide(request, staff, approve=True)


@auth.requires("decide_review")
async def void(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """POST /admin/referrals/{friend}/void (form: csrf, reason): nobody is paid."""
    return await _decide(request, staff, approve=False)


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/referrals", queue)
    app.router.add_get("/admin/referrals/{friend}", referral)
    app.router.add_post("/admin/referrals/{friend}/approve", approve)
    app.router.add_post("/admin/referrals/{friend}/void", void)
