"""Orders the shop reports: purchase points, the first order completing a pending referral, and refunds
that take back exactly what an order awarded."""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rewards import engine, keys
from rewards.counters import Counters
from rewards.errors import ProgramError
from rewards.ledger import Ledger
from rewards.members import Members
from rewards.part import Part
from rewards.referrals import Referrals
from rewards.ring_watch import RingWatch
from rewards.rules import Rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purchase:
    answer: dict[str, Any]  # exactly what the first call answered
    new: bool
    completed_referral_of: str | None  # the referrer, when this order completed a referral


class Orders(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters, ledger: Ledger,
                 members: Members, referrals: Referrals, rings: RingWatch | None = None):
        super().__init__(redis, rules, now_ms)
        self.rings = rings
        self.counters = counters
        self.ledger = ledger
        self.members = members
        self.referrals = referrals
        self._purchase = self.script("purchase", moves_points=True)
        self._refund = self.script("refund", moves_points=True)

    async def record_purchase(self, order_id: str, uid: str, amount: int, at_ms: int | None = None,
                              fingerprint: str | None = None) -> Purchase:
        """An order reported by the shop: purchase points, and a pending referral completes on the first.

        `fingerprint` (the shop's hash of e.g. the delivery address or payment token): when a referred
        friend's order carries one already seen on their referrer's orders, the referral waits for staff
        (status "review") instead of completing: likely the referrer buying for themselves."""
        owner_key = keys.order_owner(order_id)
        if not await self.redis.set(owner_key, uid, nx=True):
            owner = (await self.redis.get(owner_key)).decode()
            if owner != uid:
                raise ProgramError("ORDER_CONFLICT", "this order_id was already reported for another member")
        at = at_ms if at_ms is not None else self.now_ms()
        await self.members.see(uid, "purchase", at)
        tier = await self.members.tier_of(uid)
        awards = [self.ledger.award("purchase", self.rules.purchase_points(amount), at, f"order:{order_id}",
                                    "purchase", tier=tier, note=order_id)]
        first = self.rules.earn.get("first_purchase")
        first_awards = [self.ledger.award("first_purchase", first.points, at, "first_purchase", "purchase", tier=tier,
                                          note=order_id)] if first and first.points else []
        specs = [a.spec(self.rules) for a in awards if a.amount > 0]
        first_specs = [a.spec(self.rules) for a in first_awards]
        terms = await self.referrals.experiments.referral_terms(uid)  # a referral pays the arm it was attributed under
        friend_spec = self.referrals.friend_award(at, order_id, terms.friend_points)
        review = await self._looks_like_self_referral(uid, fingerprint) if fingerprint else False
        # [rings] hold: purchase.lua holds the referral (RING) when the friend's record names a flagged group
        ring_hold = await self.rings.before_completion(uid, fingerprint) if self.rings else False
        # [budget]: the completion's cost reserved first; held (BUDGET) when it does not fit (rewards/budget.py)
        budget_hold = not review and not await self._budget_gate(uid, amount, at, friend_spec, terms.referrer_points)
        specs = await self._campaign_budget(order_id, uid, amount, at, tier, awards, specs)
        await self.redis.sadd(keys.SETTLE, uid)  # the intent, written before the step it guards
        new, raw, *referred_first = await self._purchase(
            keys=[*keys.ledger_keys(uid), keys.orders(uid), keys.referral(uid)],
            args=[json.dumps({"order": order_id, "amount": amount, "at": at,
                              "month": engine.shop_time(self.rules, at).strftime("%Y-%m"),
                              "awards": specs, "first_awards": first_specs,
                              "referral_min": self.rules.referral_minimum_order, "friend_award": friend_spec,
                              "review": review, "ring_hold": ring_hold, "budget_hold": budget_hold})])
        answer = json.loads(raw)
        await self.fact(f"p:{order_id}", "p", u=uid, o=order_id, a=amount, at=at, f=fingerprint)
        await self.referrals.budget_after(uid, at)
        if fingerprint:
            await self.redis.sadd(keys.fingerprints(uid), fingerprint)
        await self.ledger.schedule(uid, *specs, *first_specs, friend_spec)
        paid_referrer = await self.referrals.settle(uid)
        if new:
            await self.counters.count("orders")
            await self.counters.count("revenue_yen", amount)
            if answer.get("referral"):
                await self.counters.count("referred_revenue_yen", amount)
            if referred_first and int(referred_first[0]):  # the funnel's "first purchases" (rewards/stats.py)
                await self.counters.count("first_purchases")
            await self.counters.count("points_issued", int(answer.get("points_awarded", 0)))
            if (answer.get("referral") or {}).get("status") == "review":
                reason = (await self.redis.hget(keys.referral(uid), "review_reason") or b"").decode()
                log.warning("referral of %s held for review (%s): order %s", uid,
                            {"FINGERPRINT": "fingerprint of the referrer", "RING": "referral ring",
                             "BUDGET": "the month's referral budget is spent"}.get(reason, reason), order_id)
                await self.counters.count("referrals_review")
        return Purchase(answer=answer, new=bool(new), completed_referral_of=paid_referrer)

    # ---- [budget] (rewards/budget.py) ------------------------------------------------------------------------
    async def _budget_gate(self, uid: str, amount: int, at: int, friend_spec: dict[str, Any],
                           referrer_points: int) -> bool:
        """A first order that may complete a pending referral reserves the completion's cost first. False: it
        does not fit this month's referral budget, so the referral is held (BUDGET) instead of completing."""
        if not self.referrals.budget.cap() or amount < self.rules.referral_minimum_order:
            return True
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.referral(uid), ["status", "referrer"])
            pipe.hget(keys.member(uid), keys.field("first_order"))
            (status, referrer), first_order = await pipe.execute()
        if status != b"pending" or not referrer or first_order is not None:
            return True
        return await self.referrals.budget_gate(uid, referrer.decode(), friend_spec, at, referrer_points)

    async def _campaign_budget(self, order_id: str, uid: str, amount: int, at: int, tier: Any,
                               awards: list, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """[budget] campaign_monthly_yen: the points a campaign adds to the order's purchase points are reserved in
        the month's campaign budget; when they do not fit, the order earns its points without the campaign."""
        budget = self.referrals.budget
        if not budget.cap("campaign") or not awards:
            return specs
        plain = replace(awards[0], amount=math.floor(self.rules.purchase_points(amount)
                                                     * (tier.multiplier if tier else 1.0) + 1e-9))
        extra = awards[0].amount - plain.amount
        if extra <= 0:
            return specs
        if await budget.reserve_campaign(order_id, extra, at):
            await budget.settle_campaign(order_id, extra, at)
            return specs
        log.info("order %s of %s earns without the campaign: the month's campaign budget is spent", order_id, uid)
        return [plain.spec(self.rules)] if plain.amount > 0 else []

    async def _looks_like_self_referral(self, friend: str, fingerprint: str) -> bool:
        ref = await self.redis.hmget(keys.referral(friend), ["status", "referrer"])
        if ref[0] != b"pending" or not ref[1]:
            return False
        return bool(await self.redis.sismember(keys.fingerprints(ref[1].decode()), fingerprint))

    async def buyer(self, order_id: str) -> str | None:
        """The member an order was credited to (None: unknown, or kept for a customer not linked yet)."""
        owner = await self.redis.get(keys.order_owner(order_id))
        uid = owner.decode() if owner is not None else ""
        return uid if uid.startswith("U") else None

    async def refund(self, order_id: str, refund_id: str = "", yen: int | None = None) -> tuple[str, int]:
        """Reverse what an order awarded, once: ("OK" | "ALREADY_REFUNDED", points reversed).

        With `refund_id` and `yen` (a shop's partial refund: the yen of the order's subtotal it gives back), only
        the refunded part: purchase points in proportion, the rest once nothing is left (refund.lua)."""
        return (await self.refund_part(order_id, refund_id, yen))[:2]

    async def refund_part(self, order_id: str, refund_id: str = "", yen: int | None = None) -> tuple[str, int, int, bool]:
        """As refund(), and also the yen left of the order and whether this refund voided its referral."""
        owner = await self.redis.get(keys.order_owner(order_id))
        if owner is None:
            raise ProgramError("UNKNOWN_ORDER", "no order with that order_id was reported")
        uid = owner.decode()
        await self.redis.sadd(keys.SETTLE, uid)
        outcome, reversed_points, left, voided = await self._refund(
            keys=[*keys.ledger_keys(uid), keys.orders(uid), keys.referral(uid)],
            args=[order_id, self.now_ms(), int(self.ledger.write_off), refund_id, "" if yen is None else yen,
                  self.rules.referral_minimum_order])
        outcome = outcome.decode()
        if outcome != "UNKNOWN_ORDER":
            await self.fact(f"r:{order_id}:{refund_id}", "r", u=uid, o=order_id, r=refund_id or None, y=yen)
        await self.referrals.settle(uid)
        if outcome == "UNKNOWN_ORDER":  # the owner key landed but the order never did: a crash mid-report
            raise ProgramError("UNKNOWN_ORDER", "no order with that order_id was recorded")
        if outcome == "OK" and int(voided):
            await self.counters.count("referrals_voided_by_refund")
        return outcome, int(reversed_points), int(left), bool(int(voided))
