"""The referred friend's welcome coupon (rules [referral.friend_coupon]): given once per referral, the moment it is
recorded, and its code leads back to the friend when it comes back on an order.

Once per referral: attribute.lua marks the coupon due (`coupon` = 'due' in the friend's referral hash) in the
same step that records the referral, and `give()` turns 'due' into the coupon's token in one script over the
friend's keys (friend_coupon_give.lua). Whoever calls it — the code message's handler, its redelivery, or
settle() after a crash (the friend is in shokai:settle before the attribution) — gets the same coupon. A refused
attribution never marks anything due, so it never gives one.

The code: generated (the invite codes' alphabet, 50 random bits, after the rules' prefix) and claimed unique
with SET NX on its index key before it is filed; or taken from the shop's pool (the reward pool of
rules.FRIEND_COUPON_POOL, uploaded like any pool reward's codes), once per friend (friend_coupon_pop.lua). An
empty pool does not touch the referral: the friend is put on the owed list (a warning in the log, the counter
`friend_coupons_owed`), and codes uploaded to the pool later go to them first, oldest first (`give_owed`).

The coupon is one of the friend's coupons (rewards/coupons.py), so the coupons view, its page and staff scanning
it at the counter work as for a claimed reward.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from rewards import codes, keys
from rewards.counters import Counters
from rewards.coupons import Coupon, valid_through
from rewards.experiments import arm_terms
from rewards.part import Part
from rewards.rules import FRIEND_COUPON_POOL, FriendCoupon, Rules

log = logging.getLogger(__name__)

CODE_LENGTH = 10  # 32**10 = 2**50 codes: unguessable, and never mistaken for an 8-character invite code
CLAIM_ID = "referral"  # the coupon's claim id: it was never claimed with points
OWED_BATCH = 100  # owed coupons given per call of give_owed()


def new_friend_code(prefix: str) -> str:
    """PREFIX + ABCDE-23456: random, from an alphabet without look-alikes (no 0/O, 1/I)."""
    raw = "".join(secrets.choice(codes.ALPHABET) for _ in range(CODE_LENGTH))
    return f"{prefix}{raw[:5]}-{raw[5:]}"


def index_form(code: str) -> str:
    """How a code is looked up: what a customer typed (full width, lower case, spaces around) finds it too."""
    return codes.normalise(code).strip()


class FriendCoupons(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self._give = self.script("friend_coupon_give")
        self._pop = self.script("friend_coupon_pop")

    async def give(self, friend: str) -> Coupon | None:
        """The friend's welcome coupon: given now if it is due, the one given before if any; None when none is
        due (no coupon in the rules, never referred, refused, voided) or the pool is empty (then owed)."""
        state, exp_id, arm_id = await self.redis.hmget(keys.referral(friend), ["coupon", "exp", "arm"])
        rule = self.rule_for(exp_id, arm_id)  # an experiment's arm may give another coupon, or none
        if state is None:
            return None
        if state != b"due":
            return await self.held(friend)
        if rule is None:  # due, but the rules no longer give one: nothing to give it with
            return None
        code = await self._code_for(friend, rule.kind, rule.prefix)
        if code is None:
            await self._owe(friend)
            return None
        now = self.now_ms()
        token = secrets.token_urlsafe(16)
        coupon = Coupon(token=token, reward_id=FRIEND_COUPON_POOL, code=code, claim_id=CLAIM_ID, issue=rule.kind,
                        cost=0, issued_at_ms=now, expires_at_ms=valid_through(self.rules, rule.valid_days, now))
        await self.redis.set(keys.coupon(token), friend)  # the coupon page's way to it; harmless if not filed
        outcome, *rest = await self._give(keys=[keys.referral(friend), keys.coupons(friend),
                                                keys.coupon_order(friend)],
                                          args=[token, coupon.to_json(), now])
        outcome = outcome.decode()
        if outcome == "NOT_DUE":  # voided meanwhile (a pool code taken for it stays set aside for this friend)
            return None
        if rule.kind == "pool":  # filed: the pool's record of the code taken has done its work
            await self.redis.delete(keys.friend_coupon_taken(FRIEND_COUPON_POOL, friend))
        if outcome == "NEW":
            await self.counters.count("friend_coupons_given")
            await self.redis.zrem(keys.FRIEND_COUPONS_OWED, friend)
            return coupon
        given = Coupon.from_json(rest[0])  # given meanwhile (the sweep and the handler at once): that one stands
        if given.code != code:
            await self._unused(friend, rule.kind, code)
        return await self.held(friend)

    def rule_for(self, exp_id: bytes | None, arm_id: bytes | None) -> FriendCoupon | None:
        """The welcome coupon of a referral attributed under this experiment arm (none: [referral.friend_coupon])."""
        if exp_id is None or arm_id is None:
            return self.rules.friend_coupon
        return arm_terms(self.rules, exp_id.decode(), arm_id.decode()).friend_coupon

    async def rule_of(self, friend: str) -> FriendCoupon | None:
        """The welcome coupon the friend's referral gives (what its card and page name)."""
        if not self.rules.experiments:
            return self.rules.friend_coupon
        return self.rule_for(*await self.redis.hmget(keys.referral(friend), ["exp", "arm"]))

    async def _unused(self, friend: str, kind: str, code: str) -> None:
        """A code taken for a coupon that another call gave first: a pool code goes back to the front of the pool,
        and its index (when it is this friend's) goes, so the next friend can have it."""
        if kind == "pool":
            await self.redis.lpush(keys.reward_pool(FRIEND_COUPON_POOL), code)
        if await self.friend_by_coupon(code) == friend:
            await self.redis.delete(keys.friend_coupon_code(index_form(code)))

    async def _code_for(self, friend: str, kind: str, prefix: str) -> str | None:
        """The code to give: taken from the pool (the same one on a retry), or a fresh generated one that no other
        coupon has (its index key set first, so two friends never share a code)."""
        if kind == "pool":
            code = (await self._pop(keys=[keys.reward_pool(FRIEND_COUPON_POOL),
                                          keys.friend_coupon_taken(FRIEND_COUPON_POOL, friend)])).decode()
            if not code:
                return None
            owner = await self.redis.set(keys.friend_coupon_code(index_form(code)), friend, nx=True)
            if not owner and await self.friend_by_coupon(code) != friend:
                log.error("pool code %s was given to another friend before: the pool holds a code twice", code)
            return code
        while True:  # a collision is a 1-in-2**50 event per code already given: the loop practically never repeats
            code = new_friend_code(prefix)
            if await self.redis.set(keys.friend_coupon_code(index_form(code)), friend, nx=True):
                return code

    async def _owe(self, friend: str) -> None:
        if await self.redis.zadd(keys.FRIEND_COUPONS_OWED, {friend: self.now_ms()}, nx=True):
            await self.counters.count("friend_coupons_owed")
            log.warning("the friend coupon pool (%s) is empty: %s's welcome coupon is owed until codes are "
                        "uploaded", FRIEND_COUPON_POOL, friend)

    async def owed(self) -> list[str]:
        """Friends whose coupon found the pool empty, oldest first."""
        return [f.decode() for f in await self.redis.zrange(keys.FRIEND_COUPONS_OWED, 0, OWED_BATCH - 1)]

    async def give_owed(self) -> list[tuple[str, Coupon]]:
        """After codes were uploaded: the owed coupons, oldest first, while the pool lasts. A friend whose referral
        was voided meanwhile leaves the list with nothing."""
        given = []
        for friend in await self.owed():
            coupon = await self.give(friend)
            if coupon is not None:
                given.append((friend, coupon))
            elif await self.redis.hget(keys.referral(friend), "coupon") != b"due" or \
                    await self.redis.hget(keys.referral(friend), "status") == b"voided":
                await self.redis.zrem(keys.FRIEND_COUPONS_OWED, friend)
            else:
                break  # the pool ran out again
        return given

    async def held(self, friend: str) -> Coupon | None:
        """The welcome coupon given to the friend, None when none was (yet)."""
        token = await self.redis.hget(keys.referral(friend), "coupon")
        if token is None or token == b"due":
            return None
        raw = await self.redis.hget(keys.coupons(friend), token.decode())
        used = await self.redis.hget(keys.coupons_used(friend), token.decode())
        return Coupon.from_json(raw, int(used or 0)) if raw else None

    async def friend_coupon(self, uid: str) -> str | None:
        """The code of the member's welcome coupon, None when they have none."""
        coupon = await self.held(uid)
        return coupon.code if coupon else None

    async def friend_by_coupon(self, code: str) -> str | None:
        """The friend a welcome coupon code was given to (an order carrying it names its buyer), or None."""
        code = index_form(code)
        if not code or len(code) > 100:
            return None
        owner = await self.redis.get(keys.friend_coupon_code(code))
        return owner.decode() if owner else None

