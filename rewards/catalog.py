"""The reward catalog: what a member can claim, and claims that spend points and issue a coupon exactly once.

A claim spans two hash slots: the reward's stock ({r:<reward id>}) and the member's points and coupons
({<user id>}). So it is a sequence of idempotent single-slot steps, all keyed by the claim id that was
minted when the member looked at the reward (it rides in the confirm button):

  begin    member: the claim goes open -> pending and counts against the member's limit for the reward
  reserve  reward: one of the stock is held for the claim (a pool reward pops its code here)
  spend    member: the ledger, operation id `claim:{claim id}`
  finish   member: the coupon, written only when that spend is there
  commit   reward: the held stock counts as claimed

Running a step again, or the whole confirm fifty times at once, changes nothing: one spend, one coupon.
A refusal after `begin` is final for the claim, and is atomic with "its points were not spent", so a claim
is either refused (its stock given back) or completed, never both. A crash between steps leaves a held
reservation; `release_stale()` (run it from the worker's clock loop) completes the claim if its points were
spent and otherwise refuses it and gives the stock back.

The reward's own steps and its stock are in rewards/inventory.py, the coupons a claim issues in
rewards/coupons.py; Catalog drives the claim and answers for both under the names callers use.
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rewards import keys
from rewards.coupons import Coupon, CouponBook, new_coupon_code
from rewards.errors import ProgramError
from rewards.inventory import KEEP_SECONDS, Inventory, Stock
from rewards.ledger_codec import op_field
from rewards.members import MemberView
from rewards.part import LUA
from rewards.program import Program
from rewards.rules import SHOPIFY_DISCOUNT, Reward, Rules
from rewards.scripts import register
from rewards.shop_discounts import SHOP_UNAVAILABLE, DiscountShop, ShopDiscount, ShopRefused, discount_code

# Why a claim is refused (stable codes; texts are per locale under claim_refused_<code>).
OUT_OF_STOCK = "OUT_OF_STOCK"
NOT_ENOUGH_POINTS = "NOT_ENOUGH_POINTS"
TIER_TOO_LOW = "TIER_TOO_LOW"
NOT_AVAILABLE = "NOT_AVAILABLE"  # outside the reward's validity window, or no longer in the rules
LIMIT_REACHED = "LIMIT_REACHED"  # the member's per-member limit for the reward
IN_DEBT = "IN_DEBT"
UNKNOWN_CLAIM = "UNKNOWN_CLAIM"  # expired, unknown, or another member's claim id
REASONS = (OUT_OF_STOCK, NOT_ENOUGH_POINTS, TIER_TOO_LOW, NOT_AVAILABLE, LIMIT_REACHED, IN_DEBT, UNKNOWN_CLAIM,
           SHOP_UNAVAILABLE)  # the last: the shop would not make a shopify_discount code (points given back)

CLAIM_TTL_SECONDS = 86_400  # a confirm button works for a day after the reward was shown
STALE_MINUTES = 15  # a reservation this old whose claim never finished is settled by release_stale()

log = logging.getLogger(__name__)

_CLAIM_ID = re.compile(r"^[A-Za-z0-9_-]{16}$")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Listing:
    reward: Reward
    stock: Stock
    refusal: str | None  # what a claim would be refused with right now; None: claimable


@dataclass(frozen=True)
class Offer:
    reward: Reward
    stock: Stock
    claim_id: str  # goes into the confirm button
    refusal: str | None  # what a confirm would say right now; None: claimable
    points: int  # the member's spendable points


@dataclass(frozen=True)
class ClaimResult:
    ok: bool
    reason: str | None = None
    reward: Reward | None = None
    coupon: Coupon | None = None
    new: bool = False  # this call issued the coupon (False: the same claim confirmed again)
    balance: int | None = None


class Catalog:
    def __init__(self, redis: Any, program: Program, rules: Rules, clock: Callable[[], float] = time.time,
                 shop: DiscountShop | None = None):
        self.redis = redis
        self.program = program
        self.rules = rules
        self.clock = clock
        self.shop = shop  # makes the codes of shopify_discount rewards; None: those rewards are not offered
        self._fail = register(redis, LUA / "claim_fail.lua")
        self._open = register(redis, LUA / "claim_open.lua")
        self._begin = register(redis, LUA / "claim_begin.lua")
        self._refuse_script = register(redis, LUA / "claim_refuse.lua")
        self._finish = register(redis, LUA / "claim_finish.lua")

        self.inventory = Inventory(redis, rules, self.now_ms)
        self.stock = self.inventory.stock
        self.stocks_of = self.inventory.stocks_of
        self.stocks = self.inventory.stocks
        self.add_stock = self.inventory.add_stock
        self.add_codes = self.inventory.add_codes
        self.wait_for_stock = self.inventory.wait_for_stock
        self.waiting_for_stock = self.inventory.waiting_for_stock
        self.stop_waiting = self.inventory.stop_waiting

        self.coupon_book = CouponBook(redis, rules, self.now_ms)
        self.coupons = self.coupon_book.coupons
        self.coupon = self.coupon_book.coupon
        self.use_coupon = self.coupon_book.use_coupon
        self.last_day = self.coupon_book.last_day
        self.day_of = self.coupon_book.day_of

    def now_ms(self) -> int:
        """The catalog's clock, in ms (what coupon expiry is judged against)."""
        return int(self.clock() * 1000)

    # ---- what a member sees ------------------------------------------------------------
    def available(self, reward: Reward, now_ms: int | None = None) -> bool:
        """Inside the reward's validity window (from inclusive, until exclusive)."""
        if reward.issue == SHOPIFY_DISCOUNT and self.shop is None:  # no shop configured (SHOPIFY_SHOP)
            return False
        now = datetime.fromtimestamp((now_ms if now_ms is not None else self.now_ms()) / 1000, self.rules.timezone)
        if reward.available_from and now < reward.available_from:
            return False
        return not (reward.available_until and now >= reward.available_until)

    def tier_reached(self, reward: Reward, tier: str) -> bool:
        if not reward.tier:
            return True
        ranks = [t.name for t in self.rules.tiers]
        return tier in ranks and reward.tier in ranks and ranks.index(tier) >= ranks.index(reward.tier)

    async def _claims_of(self, uid: str, reward: Reward) -> int:
        return int(await self.redis.hget(keys.claimed(uid), reward.id) or 0)

    async def _all_claims_of(self, uid: str, rewards: list[Reward]) -> dict[str, int]:
        """Claims made per reward with a per-member limit, in one read (none when no reward has a limit)."""
        if not any(reward.per_member for reward in rewards):
            return {}
        return {_s(k): int(v) for k, v in (await self.redis.hgetall(keys.claimed(uid))).items()}

    def _blocked(self, reward: Reward, view: MemberView, now_ms: int) -> str | None:
        """The refusals known before anything is reserved, in the order a confirm checks them."""
        if not self.available(reward, now_ms):
            return NOT_AVAILABLE
        if not self.tier_reached(reward, view.tier):
            return TIER_TOO_LOW
        if self.rules.block_claims_in_debt and view.debt > 0:
            return IN_DEBT
        if view.points < reward.cost:
            return NOT_ENOUGH_POINTS
        return None

    async def _preview(self, uid: str, reward: Reward, view: MemberView, stock: Stock, now_ms: int,
                       claims: int | None = None) -> str | None:
        blocked = self._blocked(reward, view, now_ms)
        if blocked:
            return blocked
        if reward.per_member:
            if claims is None:
                claims = await self._claims_of(uid, reward)
            if claims >= reward.per_member:
                return LIMIT_REACHED
        if stock.left == 0:
            return OUT_OF_STOCK
        return None

    async def _view(self, uid: str) -> MemberView:
        view = await self.program.member(uid)
        if view is None:
            raise ProgramError("UNKNOWN_MEMBER", "no member with that user id")
        return view

    async def catalog(self, uid: str, view: MemberView | None = None) -> list[Listing]:
        """The rewards inside their validity window, each with what a claim would be refused with now (for
        the member as `view` shows them, when the caller has just read it)."""
        view = view or await self._view(uid)
        now = self.now_ms()
        shown = [reward for reward in self.rules.rewards if self.available(reward, now)]
        stocks, claims = await asyncio.gather(self.stocks_of(shown), self._all_claims_of(uid, shown))  # one trip
        return [Listing(reward, stock, await self._preview(uid, reward, view, stock, now, claims.get(reward.id, 0)))
                for reward, stock in zip(shown, stocks, strict=True)]

    async def show(self, uid: str, reward_id: str) -> Offer | None:
        """A reward's details for a member, and a fresh claim id for its confirm button (None: no such reward)."""
        reward = self.rules.reward(reward_id)
        if reward is None:
            return None
        now = self.now_ms()
        claim_id = secrets.token_urlsafe(12)
        code = {"pool": "", SHOPIFY_DISCOUNT: discount_code(claim_id)}.get(reward.issue) or new_coupon_code()
        # asked together, so their reads and the claim's opening share round trips (auto-pipelined)
        view, _, stock = await asyncio.gather(
            self._view(uid),
            self._open(keys=[keys.claim(uid, claim_id)],
                       args=[reward.id, secrets.token_urlsafe(16), code, now, now + CLAIM_TTL_SECONDS * 1000,
                             CLAIM_TTL_SECONDS + 3_600]),
            self.stock(reward))
        return Offer(reward, stock, claim_id, await self._preview(uid, reward, view, stock, now), view.points)

    # ---- staff ----------------------------------------------------------------------------
    async def change_stock(self, reward_id: str, add: int, by: str, *, seen_limit: int | None = None
                           ) -> tuple[Stock | None, Stock]:
        """Staff add (or take away) a reward's stock, audited under `by` (the admin API and the dashboard):
        (the stock before, after). `seen_limit`: as Inventory.add_stock. Refusals are ProgramErrors, nothing
        changed or audited."""
        reward = self.rules.reward(reward_id)
        before = await self.stock(reward) if reward else None
        after = await self.add_stock(reward_id, add, seen_limit=seen_limit)
        await self.program.audit(by, "add_stock", "", reward=reward_id, add=add,
                                 before=before.left if before else "", after=after.left)
        return before, after

    # ---- claiming ----------------------------------------------------------------------
    @staticmethod
    def _op(claim_id: str) -> str:
        return f"claim:{claim_id}"

    async def _claim(self, uid: str, claim_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.claim(uid, claim_id))
        return {_s(k): _s(v) for k, v in raw.items()}

    async def _refused(self, reason: str, reward: Reward | None = None) -> ClaimResult:
        await self.program.count(f"claims_refused:{reason}")
        return ClaimResult(ok=False, reason=reason, reward=reward)

    async def confirm(self, uid: str, claim_id: str) -> ClaimResult:
        """Confirm a claim: spend the cost and issue the coupon, once, whatever the number of calls."""
        if not _CLAIM_ID.match(claim_id):
            return await self._refused(UNKNOWN_CLAIM)
        claim = await self._claim(uid, claim_id)  # in the member's slot: another member's id is not found
        if not claim:
            return await self._refused(UNKNOWN_CLAIM)
        reward = self.rules.reward(claim["reward"])
        if claim["state"] == "done":
            return await self._issued(uid, claim_id, reward)
        if claim["state"] == "refused":
            if claim.get("refund") and reward is not None:  # a crash may have come before the points went back
                await self._give_back(uid, claim_id, reward)
            return ClaimResult(ok=False, reason=claim["reason"], reward=reward)
        if reward is None:  # taken out of the rules since it was shown
            return await self._refused(NOT_AVAILABLE)
        now = self.now_ms()
        if claim["state"] == "open":
            if int(claim["expires_at"]) <= now:
                return await self._refused(UNKNOWN_CLAIM, reward)
            view = await self.program.member(uid)
            if view is None:
                return await self._refused(UNKNOWN_CLAIM, reward)
            blocked = self._blocked(reward, view, now)
            if blocked:  # nothing reserved yet: the claim stays open and may be confirmed later
                return await self._refused(blocked, reward)

        begun = await self._begin(keys=[keys.claim(uid, claim_id), keys.claimed(uid)],
                                  args=[now, reward.per_member or 0, KEEP_SECONDS])
        step = _s(begun[0])
        if step == "DONE":
            return await self._issued(uid, claim_id, reward)
        if step == "REFUSED":
            return ClaimResult(ok=False, reason=_s(begun[1]), reward=reward)
        if step != "GO":
            return await self._refused(step, reward)  # UNKNOWN_CLAIM (expired) or LIMIT_REACHED

        state, code = await self.inventory.reserve(reward, claim_id, uid, now)
        if state in ("out_of_stock", "released"):  # released: settled as stale meanwhile, already refused
            refused = await self._refuse(uid, claim_id, reward, OUT_OF_STOCK if state == "out_of_stock"
                                         else UNKNOWN_CLAIM)
            if refused is not None:
                return refused

        written, _ = await self.program.spend(uid, self._op(claim_id), reward.cost, f"reward:{reward.id}",
                                              note=claim_id)
        if written == -1:
            view = await self.program.member(uid)
            reason = IN_DEBT if view and view.debt > 0 and self.rules.block_claims_in_debt else NOT_ENOUGH_POINTS
            refused = await self._refuse(uid, claim_id, reward, reason)
            if refused is not None:
                return refused
            # None: another confirm of this claim spent meanwhile (points arrived): carry on with it
        return await self._complete(uid, claim_id, reward, code)

    async def _refuse(self, uid: str, claim_id: str, reward: Reward, reason: str) -> ClaimResult | None:
        """Refuse a pending claim for good and give its stock back; None when its points were spent after all."""
        outcome = _s(await self._refuse_script(keys=[keys.claim(uid, claim_id), keys.claimed(uid), keys.ops(uid)],
                                               args=[reason, op_field(self._op(claim_id)), self.now_ms()]))
        if outcome == "SPENT":
            return None
        if outcome == "DONE":
            return await self._issued(uid, claim_id, reward)
        await self.inventory.release(reward.id, claim_id, uid)
        stored = await self.redis.hget(keys.claim(uid, claim_id), "reason")
        final = _s(stored) if stored else UNKNOWN_CLAIM
        if final == reason:
            await self.program.count(f"claims_refused:{reason}")
        return ClaimResult(ok=False, reason=final, reward=reward)

    async def _complete(self, uid: str, claim_id: str, reward: Reward, pool_code: str) -> ClaimResult:
        """The points are spent: issue the coupon (once) and count the stock as claimed."""
        claim = await self._claim(uid, claim_id)
        if not claim:
            raise RuntimeError(f"claim {claim_id} of {uid} vanished after its points were spent")
        now = self.now_ms()
        expires = self.coupon_book.expires_at(reward, now)
        if reward.issue == SHOPIFY_DISCOUNT and claim["state"] == "pending":
            begun = int(claim.get("begun_at") or now)  # the same validity on every try of the claim
            expires = self.coupon_book.expires_at(reward, begun)
            try:
                await self._make_shop_code(uid, claim_id, reward, begun, expires)
            except ShopRefused as exc:
                return await self._shop_failed(uid, claim_id, reward, exc.why)
        token = claim["token"]
        coupon = Coupon(token=token, reward_id=reward.id, code=pool_code if reward.issue == "pool" else claim["code"],
                        claim_id=claim_id, issue=reward.issue, cost=reward.cost, issued_at_ms=now,
                        expires_at_ms=expires)
        await self.redis.set(keys.coupon(token), uid)  # the page's way to the coupon; harmless if never issued
        outcome, *rest = await self._finish(
            keys=[keys.claim(uid, claim_id), keys.ops(uid), keys.coupons(uid), keys.coupon_order(uid)],
            args=[op_field(self._op(claim_id)), coupon.to_json(), now])
        outcome = _s(outcome)
        if outcome in ("NEW", "DONE"):
            await self.inventory.commit(reward.id, claim_id)
            if outcome == "NEW":
                await self.program.count("rewards_claimed")
                await self.program.count(f"rewards_claimed:{reward.id}")
            view = await self.program.member(uid)
            return ClaimResult(ok=True, reward=reward, coupon=Coupon.from_json(rest[0]), new=outcome == "NEW",
                               balance=view.points if view else None)
        if outcome == "REFUSED":
            # Refused (by a concurrent confirm or the stale sweep) just before this call's spend landed:
            # the claim stays refused, so the points go back (once, op `unclaim:{id}`) with the stock.
            await self.program.apply(uid, f"unclaim:{claim_id}", reward.cost, "refund", f"reward:{reward.id}", now,
                                     note=claim_id)
            await self.inventory.release(reward.id, claim_id, uid)
            return ClaimResult(ok=False, reason=_s(rest[0]), reward=reward)
        raise RuntimeError(f"claim {claim_id} of {uid} cannot finish: {outcome}")

    async def _make_shop_code(self, uid: str, claim_id: str, reward: Reward, begun_ms: int, expires_ms: int) -> None:
        """The claim's code in the shop: made now, or adopted when an earlier try of this claim made it."""
        assert self.shop is not None
        customer = await self.program.links.customer_of(uid)
        made = await self.shop.create_discount(ShopDiscount(
            code=discount_code(claim_id), title=f"Shokai {reward.id} {claim_id}", yen_off=reward.yen_off,
            percent_off=reward.percent_off, minimum_order=reward.minimum_order, starts_at_ms=begun_ms,
            ends_at_ms=expires_ms, customer_id=customer))
        await self.program.count("shop_discounts_made" if made else "shop_discounts_adopted")

    async def _shop_failed(self, uid: str, claim_id: str, reward: Reward, why: str) -> ClaimResult:
        """The shop would not make the code: the claim is refused for good and its points go back, once."""
        outcome = _s(await self._fail(keys=[keys.claim(uid, claim_id), keys.claimed(uid)],
                                      args=[SHOP_UNAVAILABLE, self.now_ms()]))
        if outcome == "DONE":  # another try of this claim finished it meanwhile
            return await self._issued(uid, claim_id, reward)
        if outcome == "REFUSED":
            log.warning("claim %s (%s): the shop made no discount code, points given back: %s", claim_id,
                        reward.id, why)
            await self.program.count(f"claims_refused:{SHOP_UNAVAILABLE}")
            await self._give_back(uid, claim_id, reward)
        stored = await self.redis.hget(keys.claim(uid, claim_id), "reason")
        return ClaimResult(ok=False, reason=_s(stored) if stored else SHOP_UNAVAILABLE, reward=reward)

    async def _give_back(self, uid: str, claim_id: str, reward: Reward) -> int:
        """A refused claim's stock, and its spent points: what the spend took, as op `unclaim:{id}`, written once
        however often this runs. Returns what releasing the stock returned."""
        spent = await self.program.points_ledger.entry(uid, self._op(claim_id))
        if spent is not None and spent["delta"] < 0:
            written, _ = await self.program.apply(uid, f"unclaim:{claim_id}", -spent["delta"], "refund",
                                                  f"reward:{reward.id}", self.now_ms(), note=claim_id)
            if written == 1:
                await self.program.count("claims_refunded")
        return await self.inventory.release(reward.id, claim_id, uid)

    async def _issued(self, uid: str, claim_id: str, reward: Reward | None) -> ClaimResult:
        """The answer to a claim confirmed before: the same coupon."""
        token = _s(await self.redis.hget(keys.claim(uid, claim_id), "token"))
        coupon = await self.coupon_book.held(uid, token)
        if coupon is None:
            raise RuntimeError(f"claim {claim_id} of {uid} is done but its coupon is missing")
        if reward is not None:  # repair what a crash after the coupon may have left undone
            await self.redis.set(keys.coupon(token), uid)
            await self.inventory.commit(reward.id, claim_id)
        view = await self.program.member(uid)
        return ClaimResult(ok=True, reward=reward, coupon=coupon, new=False, balance=view.points if view else None)

    async def release_stale(self, now_ms: int | None = None, older_than_minutes: int = STALE_MINUTES) -> int:
        """Settle reservations older than N minutes whose claim never finished (a crash between steps).

        A claim whose points were spent is completed (the member gets the coupon they paid for); any other is
        refused and its stock (or pool code) given back. Idempotent; returns how many were given back.
        Run it from the worker's periodic loop.
        """
        now = now_ms if now_ms is not None else self.now_ms()
        cutoff = now - older_than_minutes * 60_000
        released = 0
        for reward in self.rules.rewards:
            async for claim_id, uid, pool_code in self.inventory.stale(reward, cutoff):
                outcome = _s(await self._refuse_script(
                    keys=[keys.claim(uid, claim_id), keys.claimed(uid), keys.ops(uid)],
                    args=[UNKNOWN_CLAIM, op_field(self._op(claim_id)), now]))
                if outcome == "SPENT":
                    await self._complete(uid, claim_id, reward, pool_code)
                elif outcome == "DONE":
                    await self.inventory.commit(reward.id, claim_id)
                elif await self.redis.hget(keys.claim(uid, claim_id), "refund"):  # the shop refused its code
                    released += await self._give_back(uid, claim_id, reward)
                else:
                    released += await self.inventory.release(reward.id, claim_id, uid)
        return released
