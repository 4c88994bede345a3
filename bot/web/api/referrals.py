"""Referrals: list them by status, and staff's decisions on the review queue (approve pays both once; void)."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import notices
from bot.services import Services
from bot.web.http import ApiError, optional_body, page, query_str, shop_time, valid_user_id
from rewards.review import STATUSES, Evidence, ReferralReview, Side

WHO = "api"  # the audit log's "who" for these decisions


def _referral(services: Services, record: dict[str, str]) -> dict[str, Any]:
    return {"friend_id": record["friend"], "referrer_id": record.get("referrer"), "status": record.get("status"),
            "code": record.get("code"), "order_id": record.get("order"),
            "created_at": shop_time(services, record.get("created_at")),
            "completed_at": shop_time(services, record.get("completed_at")),
            "review_reason": record.get("review_reason"), "void_reason": record.get("void_reason"),
            "decided_by": record.get("approved_by") or record.get("voided_by"), **_ring(record)}


def _ring(record: dict[str, str]) -> dict[str, Any]:
    """A referral-ring flag ([rings], rewards/ring_watch.py): the group, its score and reasons."""
    if not record.get("ring"):
        return {}
    return {"ring": {"group": record["ring"], "score": float(record.get("ring_score") or 0),
                     "reasons": [r for r in record.get("ring_reasons", "").split(", ") if r],
                     "cleared": bool(record.get("ring_cleared"))}}


def _side(services: Services, side: Side) -> dict[str, Any]:
    return {"user_id": side.user_id, "first_seen_at": shop_time(services, side.first_seen_at),
            "followed_at": shop_time(services, side.followed_at), "orders": side.orders, "spent_yen": side.spent_yen,
            "fingerprints": side.fingerprints, "referred_by": side.referred_by, "blocked": side.blocked}


def _evidence(services: Services, e: Evidence) -> dict[str, Any]:
    """What the dashboard's referral page shows (rewards/review.py Evidence), for machines."""
    return _referral(services, e.record) | {
        "order_yen": e.order_yen, "shared_fingerprints": e.shared_fingerprints,
        "follow_to_attribution_ms": e.follow_to_attribution_ms,
        "attribution_to_purchase_ms": e.attribution_to_purchase_ms,
        "friend": _side(services, e.friend), "referrer": _side(services, e.referrer),
        "referrer_referrals": e.referrer_referrals, "mutual": e.mutual}


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def referrals(request: web.Request) -> web.Response:
        """GET /api/v1/referrals?status=pending|completed|refused|review (refused: voided)."""
        status = query_str(request, "status", required=True, choices=STATUSES)
        assert status is not None
        offset, limit = page(request)
        s = services(request)
        found = await ReferralReview(s.program).referrals(status)
        return web.json_response({"status": status, "total": len(found), "offset": offset, "limit": limit,
                                  "referrals": [_referral(s, r) for r in found[offset:offset + limit]]})

    async def referral(request: web.Request) -> web.Response:
        """GET /api/v1/referrals/{friend_id}: one referral with the evidence staff weigh (fingerprints, timing,
        the pair's history)."""
        friend = valid_user_id(request.match_info["friend_id"])
        s = services(request)
        evidence = await ReferralReview(s.program).evidence(friend)
        if evidence is None:
            raise ApiError(404, "UNKNOWN_REFERRAL", "that member was never referred")
        return web.json_response(_evidence(s, evidence))

    async def decide(request: web.Request, approve: bool) -> web.Response:
        friend = valid_user_id(request.match_info["friend_id"])
        body = await optional_body(request, {"reason": str})
        reason = str(body.get("reason", "")).strip()
        if len(reason) > 500:
            raise ApiError(400, "INVALID_REASON", "reason must be at most 500 characters")
        s = services(request)
        review = ReferralReview(s.program)
        if approve and await review.flagged_only(friend):  # [rings] flag mode: approving clears the flag, no payout
            await review.dismiss_ring(friend, WHO)
            record = await review.referral(friend) or {}
            return web.json_response({"friend_id": friend, "referrer_id": record.get("referrer"),
                                      "status": record.get("status"), "changed": True, "ring_cleared": True})
        # audited too, once per referral: a retried request audits what its first try decided and did not audit
        decision = await (review.approve(friend, WHO, reason=reason) if approve
                          else review.void(friend, WHO, reason=reason))
        await notices.after_review_decision(s, decision)
        return web.json_response({"friend_id": friend, "referrer_id": decision.referrer, "status": decision.status,
                                  "changed": decision.changed})

    async def approve(request: web.Request) -> web.Response:
        return await decide(request, approve=True)

    async def void(request: web.Request) -> web.Response:
        return await decide(request, approve=False)

    app.router.add_get("/api/v1/referrals", referrals)
    app.router.add_get("/api/v1/referrals/{friend_id}", referral)
    app.router.add_post("/api/v1/referrals/{friend_id}/approve", approve)
    app.router.add_post("/api/v1/referrals/{friend_id}/void", void)
