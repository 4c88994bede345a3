"""A reward's stock: what is left, the code pool of a pool reward, the reservations of claims under way,
staff top-ups and uploads, and the members waiting to hear it is back.

Every step here is in the reward's own hash slot ({r:<reward id>}); rewards/catalog.py drives a claim
through them alongside the member's steps.
"""
from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from rewards import keys
from rewards.errors import ProgramError
from rewards.part import Part
from rewards.rules import FRIEND_COUPON_POOL, Reward, Rules

KEEP_SECONDS = 30 * 86_400  # how long a claim's outcome (and its reservation record) is remembered
POOL_CODE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces
# a reward runs low (the dashboard warns) when what is left is at most a tenth of its limit, or this many
LOW_STOCK_SHARE = 0.1
LOW_STOCK_LEAST = 5


@dataclass(frozen=True)
class Stock:
    reward_id: str
    limit: int | None  # the rules' stock plus what staff added; None: no limit
    left: int | None  # what can still be claimed; None: no limit
    taken: int  # held for claims under way plus claimed
    claimed: int  # coupons issued
    held: int  # reservations of claims under way
    pool: int | None  # codes waiting in the pool (pool rewards only)


def stock_level(stock: Stock) -> str:
    """"out" (none left), "low" (LOW_STOCK_*), "ok", or "unlimited" (no limit and no code pool)."""
    if stock.left is None:
        return "unlimited"
    if stock.left == 0:
        return "out"
    if stock.left <= max(LOW_STOCK_LEAST, math.ceil((stock.limit or 0) * LOW_STOCK_SHARE)):
        return "low"
    return "ok"


class Inventory(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int]):
        super().__init__(redis, rules, now_ms)
        self._reserve = self.script("stock_reserve")
        self._release = self.script("stock_release")
        self._commit = self.script("stock_commit")
        self._add_stock = self.script("stock_add")
        self._add_codes = self.script("pool_add")

    async def stock(self, reward: Reward) -> Stock:
        return (await self.stocks_of([reward]))[0]

    async def stocks_of(self, rewards: list[Reward]) -> list[Stock]:
        """The rewards' stock, read together (one round trip however many rewards a list shows)."""
        if not rewards:
            return []
        # asked together, so they share one round trip with whatever else is asked now (auto-pipelined:
        # bot/infra/redis_conn.py); the pool is read for every reward: cheaper than telling them apart
        answers = await asyncio.gather(*(read for reward in rewards for read in (
            self.redis.hmget(keys.reward_stock(reward.id), ["taken", "claimed", "added"]),
            self.redis.zcard(keys.reward_held(reward.id)),
            self.redis.llen(keys.reward_pool(reward.id)))))
        out = []
        for i, reward in enumerate(rewards):
            (taken, claimed, added), held, pool_length = answers[3 * i:3 * i + 3]
            taken, claimed, added = int(taken or 0), int(claimed or 0), int(added or 0)
            limit = reward.stock + added if reward.stock is not None else None
            left = max(0, limit - taken) if limit is not None else None
            pool = None
            if reward.issue == "pool":
                pool = int(pool_length)
                left = pool if left is None else min(left, pool)
            out.append(Stock(reward.id, limit, left, taken, claimed, int(held), pool))
        return out

    async def stocks(self) -> list[Stock]:
        return await self.stocks_of(list(self.rules.rewards))

    # ---- a claim's reservation ------------------------------------------------------------
    @staticmethod
    def _keys(reward_id: str, claim_id: str) -> list[str]:
        return [keys.reward_stock(reward_id), keys.reward_reservation(reward_id, claim_id),
                keys.reward_held(reward_id), keys.reward_pool(reward_id)]

    async def reserve(self, reward: Reward, claim_id: str, uid: str, now_ms: int) -> tuple[str, str]:
        """Hold one of the stock for the claim (a pool reward pops its code here): (state, pool code)."""
        state, code = await self._reserve(
            keys=self._keys(reward.id, claim_id),
            args=[claim_id, uid, now_ms, reward.stock if reward.stock is not None else -1,
                  1 if reward.issue == "pool" else 0, KEEP_SECONDS])
        return state.decode(), code.decode()

    async def release(self, reward_id: str, claim_id: str, uid: str) -> int:
        """Give the claim's reservation back (its pool code too): 1 when this call gave it back."""
        return int(await self._release(keys=self._keys(reward_id, claim_id),
                                       args=[claim_id, KEEP_SECONDS, uid, self.now_ms()]))

    async def commit(self, reward_id: str, claim_id: str) -> None:
        """The claim's reservation counts as claimed."""
        await self._commit(keys=self._keys(reward_id, claim_id)[:3], args=[claim_id, KEEP_SECONDS])

    async def stale(self, reward: Reward, cutoff_ms: int) -> AsyncIterator[tuple[str, str, str]]:
        """(claim id, member, pool code) of each reservation still held since before the cutoff; records
        that are no longer held leave the list as they are met."""
        held = keys.reward_held(reward.id)
        for raw in await self.redis.zrangebyscore(held, "-inf", cutoff_ms):
            claim_id = raw.decode()
            res = {k.decode(): v.decode() for k, v in
                   (await self.redis.hgetall(keys.reward_reservation(reward.id, claim_id))).items()}
            uid = res.get("member")
            if not uid or res.get("state") != "held":
                await self.redis.zrem(held, claim_id)
                continue
            yield claim_id, uid, res.get("code", "")

    # ---- staff ---------------------------------------------------------------------------
    def _reward(self, reward_id: str) -> Reward:
        reward = self.rules.reward(reward_id) or self._friend_coupon_pool(reward_id)
        if reward is None:
            raise ProgramError("UNKNOWN_REWARD", "the rules name no reward with that id")
        return reward

    def _friend_coupon_pool(self, reward_id: str) -> Reward | None:
        """The friend welcome coupon's pool (rules [referral.friend_coupon] kind = "pool") takes uploads like a
        pool reward's: codes go to the reward pool named FRIEND_COUPON_POOL (rewards/friend_coupons.py)."""
        rule = self.rules.friend_coupon
        if reward_id != FRIEND_COUPON_POOL or rule is None or rule.kind != "pool":
            return None
        return Reward(id=FRIEND_COUPON_POOL, cost=0, name=rule.name, description={"ja": ""}, issue="pool")

    async def add_stock(self, reward_id: str, count: int, *, seen_limit: int | None = None) -> Stock:
        """Staff add stock (negative: take some away, never below what is already taken). With `seen_limit`
        (the stock limit the staff member was shown) it is refused as STOCK_CHANGED when the limit is no longer
        that: someone changed it meanwhile, or the same form was sent twice."""
        reward = self._reward(reward_id)
        if reward.stock is None:
            raise ProgramError("UNLIMITED_STOCK", "this reward has no stock limit"
                               + (": its stock is its code pool" if reward.issue == "pool" else ""))
        seen_added = "" if seen_limit is None else seen_limit - reward.stock
        ok, left = await self._add_stock(keys=[keys.reward_stock(reward.id)], args=[count, reward.stock, seen_added])
        if int(ok) == -1:
            raise ProgramError("STOCK_CHANGED", f"the stock changed meanwhile: {max(0, int(left))} left now")
        if not int(ok):
            raise ProgramError("NOT_ENOUGH_STOCK", f"only {max(0, int(left))} left to take away")
        return await self.stock(reward)

    async def add_codes(self, reward_id: str, new_codes: list[str]) -> tuple[int, int]:
        """Codes uploaded by the shop join a pool reward's pool: (codes added, codes in the pool).

        A code uploaded before (even one already given out) is skipped, so repeating an upload is harmless.
        """
        reward = self._reward(reward_id)
        if reward.issue != "pool":
            raise ProgramError("NOT_A_POOL_REWARD", "codes can be uploaded only for a reward with issue = \"pool\"")
        added, size = 0, int(await self.redis.llen(keys.reward_pool(reward.id)))
        for start in range(0, len(new_codes), 1000):
            batch = new_codes[start:start + 1000]
            n, size = await self._add_codes(keys=[keys.reward_pool(reward.id), keys.reward_pool_seen(reward.id)],
                                            args=batch)
            added += int(n)
        return added, int(size)

    # ---- members waiting for stock (told once when it is back) ------------------------------
    async def wait_for_stock(self, uid: str, reward_id: str) -> None:
        await self.redis.sadd(keys.reward_waiting(reward_id), uid)

    async def waiting_for_stock(self, reward_id: str) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(keys.reward_waiting(reward_id)))

    async def stop_waiting(self, reward_id: str, uid: str) -> None:
        await self.redis.srem(keys.reward_waiting(reward_id), uid)
