"""The outbound webhook events, one function per outcome, each keyed by the outcome's operation id: called
again for the same outcome (a redelivered LINE event, a re-run after a crash, a retried API call), it creates
no second delivery. bot/notices.py and the handlers call these where the outcome is already handled after the
fact; rewards/ stays free of HTTP. A Redis failure here fails the caller, which is retried as a whole."""
from __future__ import annotations

from datetime import UTC, datetime

from bot.services import Services
from rewards.catalog import ClaimResult


async def member_joined(services: Services, user_id: str) -> None:
    await services.outbound.emit("member.joined", f"member:{user_id}", {"user_id": user_id})


async def member_linked(services: Services, user_id: str, customer_id: str) -> None:
    await services.outbound.emit("member.linked", f"link:{user_id}:{customer_id}",
                                 {"user_id": user_id, "customer_id": customer_id})


async def referral_pending(services: Services, referrer: str, friend: str) -> None:
    await services.outbound.emit("referral.pending", f"referral:{friend}",
                                 {"referrer_user_id": referrer, "friend_user_id": friend})


async def referral_completed(services: Services, referrer: str, friend: str, referrer_points: int) -> None:
    await services.outbound.emit("referral.completed", f"referral:{friend}",
                                 {"referrer_user_id": referrer, "friend_user_id": friend,
                                  "referrer_points": referrer_points})


async def referral_voided(services: Services, referrer: str, friend: str) -> None:
    await services.outbound.emit("referral.voided", f"referral:{friend}",
                                 {"referrer_user_id": referrer, "friend_user_id": friend})


async def reward_claimed(services: Services, user_id: str, result: ClaimResult) -> None:
    coupon = result.coupon
    if not result.ok or coupon is None:
        return
    expires = (datetime.fromtimestamp(coupon.expires_at_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
               if coupon.expires_at_ms else None)
    await services.outbound.emit("reward.claimed", f"claim:{coupon.claim_id}",
                                 {"user_id": user_id, "reward_id": coupon.reward_id, "claim_id": coupon.claim_id,
                                  "cost": coupon.cost, "coupon_code": coupon.code, "expires_at": expires})


async def points_expired(services: Services, user_id: str, points: int, at_ms: int) -> None:
    if points > 0:
        await services.outbound.emit("points.expired", f"expire:{user_id}:{at_ms}",
                                     {"user_id": user_id, "points": points}, at_ms)
