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
"""
from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rewards import codes, keys
from rewards.errors import ProgramError
from rewards.ledger_codec import op_field
from rewards.members import MemberView
from rewards.program import Program
from rewards.rules import Reward, Rules

_LUA = Path(__file__).resolve().parent / "lua"

# Why a claim is refused (stable codes; texts are per locale under claim_refused_<code>).
OUT_OF_STOCK = "OUT_OF_STOCK"
NOT_ENOUGH_POINTS = "NOT_ENOUGH_POINTS"
TIER_TOO_LOW = "TIER_TOO_LOW"
NOT_AVAILABLE = "NOT_AVAILABLE"  # outside the reward's validity window, or no longer in the rules
LIMIT_REACHED = "LIMIT_REACHED"  # the member's per-member limit for the reward
IN_DEBT = "IN_DEBT"
UNKNOWN_CLAIM = "UNKNOWN_CLAIM"  # expired, unknown, or another member's claim id
REASONS = (OUT_OF_STOCK, NOT_ENOUGH_POINTS, TIER_TOO_LOW, NOT_AVAILABLE, LIMIT_REACHED, IN_DEBT, UNKNOWN_CLAIM)

CLAIM_TTL_SECONDS = 86_400  # a confirm button works for a day after the reward was shown
KEEP_SECONDS = 30 * 86_400  # how long a claim's outcome (and its reservation record) is remembered
STALE_MINUTES = 15  # a reservation this old whose claim never finished is settled by release_stale()
CODE_LENGTH = 10  # generated coupon codes: 10 characters (never mistaken for an 8-character invite code)

_CLAIM_ID = re.compile(r"^[A-Za-z0-9_-]{16}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")
POOL_CODE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def new_coupon_code() -> str:
    """ABCDE-23456: ten characters nobody has to squint at (no 0/O, 1/I)."""
    raw = "".join(secrets.choice(codes.ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


@dataclass(frozen=True)
class Coupon:
    token: str  # unguessable: the coupon page's address and what staff scan
    reward_id: str
    code: str  # generated, from the pool, or a reference for a manual reward
    claim_id: str
    issue: str  # generated | pool | manual
    cost: int
    issued_at_ms: int
    expires_at_ms: int = 0  # 0: never
    used_at_ms: int = 0  # 0: not used yet

    @property
    def used(self) -> bool:
        return self.used_at_ms > 0

    def expired(self, now_ms: int) -> bool:
        return bool(self.expires_at_ms) and now_ms >= self.expires_at_ms

    def to_json(self) -> str:
        return json.dumps({"token": self.token, "reward": self.reward_id, "code": self.code, "claim": self.claim_id,
                           "issue": self.issue, "cost": self.cost, "issued_at": self.issued_at_ms,
                           "expires_at": self.expires_at_ms}, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes, used_at_ms: int = 0) -> Coupon:
        c = json.loads(raw)
        return cls(token=c["token"], reward_id=c["reward"], code=c["code"], claim_id=c["claim"], issue=c["issue"],
                   cost=int(c["cost"]), issued_at_ms=int(c["issued_at"]), expires_at_ms=int(c["expires_at"]),
                   used_at_ms=used_at_ms)


@dataclass(frozen=True)
class Stock:
    reward_id: str
    limit: int | None  # the rules' stock plus what staff added; None: no limit
    left: int | None  # what can still be claimed; None: no limit
    taken: int  # held for claims under way plus claimed
    claimed: int  # coupons issued
    held: int  # reservations of claims under way
    pool: int | None  # codes waiting in the pool (pool rewards only)


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
    def __init__(self, redis: Any, program: Program, rules: Rules, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.program = program
        self.rules = rules
        self.clock = clock

        def script(name: str) -> Any:
            return redis.register_script((_LUA / f"{name}.lua").read_text())

        self._open = script("claim_open")
        self._begin = script("claim_begin")
        self._refuse_script = script("claim_refuse")
        self._finish = script("claim_finish")
        self._reserve = script("stock_reserve")
        self._release_script = script("stock_release")
        self._commit_script = script("stock_commit")
        self._add_stock = script("stock_add")
        self._add_codes = script("pool_add")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def now_ms(self) -> int:
        """The catalog's clock, in ms (what coupon expiry is judged against)."""
        return self._now_ms()

    def day_of(self, at_ms: int) -> date:
        """The shop's calendar day at a moment."""
        return datetime.fromtimestamp(at_ms / 1000, self.rules.timezone).date()

    # ---- what a member sees ------------------------------------------------------------
    def available(self, reward: Reward, now_ms: int | None = None) -> bool:
        """Inside the reward's validity window (from inclusive, until exclusive)."""
        now = datetime.fromtimestamp((now_ms if now_ms is not None else self._now_ms()) / 1000, self.rules.timezone)
        if reward.available_from and now < reward.available_from:
            return False
        return not (reward.available_until and now >= reward.available_until)

    def tier_reached(self, reward: Reward, tier: str) -> bool:
        if not reward.tier:
            return True
        ranks = [t.name for t in self.rules.tiers]
        return tier in ranks and reward.tier in ranks and ranks.index(tier) >= ranks.index(reward.tier)

    async def stock(self, reward: Reward) -> Stock:
        taken, claimed, added = await self.redis.hmget(keys.reward_stock(reward.id), ["taken", "claimed", "added"])
        taken, claimed, added = int(taken or 0), int(claimed or 0), int(added or 0)
        held = int(await self.redis.zcard(keys.reward_held(reward.id)))
        limit = reward.stock + added if reward.stock is not None else None
        left = max(0, limit - taken) if limit is not None else None
        pool = None
        if reward.issue == "pool":
            pool = int(await self.redis.llen(keys.reward_pool(reward.id)))
            left = pool if left is None else min(left, pool)
        return Stock(reward.id, limit, left, taken, claimed, held, pool)

    async def stocks(self) -> list[Stock]:
        return [await self.stock(reward) for reward in self.rules.rewards]

    async def _claims_of(self, uid: str, reward: Reward) -> int:
        return int(await self.redis.hget(keys.claimed(uid), reward.id) or 0)

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

    async def _preview(self, uid: str, reward: Reward, view: MemberView, stock: Stock, now_ms: int) -> str | None:
        blocked = self._blocked(reward, view, now_ms)
        if blocked:
            return blocked
        if reward.per_member and await self._claims_of(uid, reward) >= reward.per_member:
            return LIMIT_REACHED
        if stock.left == 0:
            return OUT_OF_STOCK
        return None

    async def _view(self, uid: str) -> MemberView:
        view = await self.program.member(uid)
        if view is None:
            raise ProgramError("UNKNOWN_MEMBER", "no member with that user id")
        return view

    async def catalog(self, uid: str) -> list[Listing]:
        """The rewards inside their validity window, each with what a claim would be refused with now."""
        view = await self._view(uid)
        now = self._now_ms()
        out = []
        for reward in self.rules.rewards:
            if not self.available(reward, now):
                continue
            stock = await self.stock(reward)
            out.append(Listing(reward, stock, await self._preview(uid, reward, view, stock, now)))
        return out

    async def show(self, uid: str, reward_id: str) -> Offer | None:
        """A reward's details for a member, and a fresh claim id for its confirm button (None: no such reward)."""
        reward = self.rules.reward(reward_id)
        if reward is None:
            return None
        view = await self._view(uid)
        now = self._now_ms()
        claim_id = secrets.token_urlsafe(12)
        code = new_coupon_code() if reward.issue != "pool" else ""
        await self._open(keys=[keys.claim(uid, claim_id)],
                         args=[reward.id, secrets.token_urlsafe(16), code, now, now + CLAIM_TTL_SECONDS * 1000,
                               CLAIM_TTL_SECONDS + 3_600])
        stock = await self.stock(reward)
        return Offer(reward, stock, claim_id, await self._preview(uid, reward, view, stock, now), view.points)

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
            return ClaimResult(ok=False, reason=claim["reason"], reward=reward)
        if reward is None:  # taken out of the rules since it was shown
            return await self._refused(NOT_AVAILABLE)
        now = self._now_ms()
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

        state, code = await self._reserve(
            keys=self._stock_keys(reward.id, claim_id),
            args=[claim_id, uid, now, reward.stock if reward.stock is not None else -1,
                  1 if reward.issue == "pool" else 0, KEEP_SECONDS])
        state, code = _s(state), _s(code)
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

    def _stock_keys(self, reward_id: str, claim_id: str) -> list[str]:
        return [keys.reward_stock(reward_id), keys.reward_reservation(reward_id, claim_id),
                keys.reward_held(reward_id), keys.reward_pool(reward_id)]

    async def _release(self, reward_id: str, claim_id: str, uid: str) -> int:
        return int(await self._release_script(keys=self._stock_keys(reward_id, claim_id),
                                              args=[claim_id, KEEP_SECONDS, uid, self._now_ms()]))

    async def _commit(self, reward_id: str, claim_id: str) -> None:
        await self._commit_script(keys=self._stock_keys(reward_id, claim_id)[:3], args=[claim_id, KEEP_SECONDS])

    async def _refuse(self, uid: str, claim_id: str, reward: Reward, reason: str) -> ClaimResult | None:
        """Refuse a pending claim for good and give its stock back; None when its points were spent after all."""
        outcome = _s(await self._refuse_script(keys=[keys.claim(uid, claim_id), keys.claimed(uid), keys.ops(uid)],
                                               args=[reason, op_field(self._op(claim_id)), self._now_ms()]))
        if outcome == "SPENT":
            return None
        if outcome == "DONE":
            return await self._issued(uid, claim_id, reward)
        await self._release(reward.id, claim_id, uid)
        stored = await self.redis.hget(keys.claim(uid, claim_id), "reason")
        final = _s(stored) if stored else UNKNOWN_CLAIM
        if final == reason:
            await self.program.count(f"claims_refused:{reason}")
        return ClaimResult(ok=False, reason=final, reward=reward)

    def _expiry(self, reward: Reward, now_ms: int) -> int:
        """Usable through the end of the day `valid_days` after the claim, in the shop's time zone."""
        if not reward.valid_days:
            return 0
        day = datetime.fromtimestamp(now_ms / 1000, self.rules.timezone).date()
        end = datetime.combine(day + timedelta(days=reward.valid_days + 1), datetime.min.time(),
                               tzinfo=self.rules.timezone)
        return int(end.timestamp() * 1000)

    async def _complete(self, uid: str, claim_id: str, reward: Reward, pool_code: str) -> ClaimResult:
        """The points are spent: issue the coupon (once) and count the stock as claimed."""
        claim = await self._claim(uid, claim_id)
        if not claim:
            raise RuntimeError(f"claim {claim_id} of {uid} vanished after its points were spent")
        now = self._now_ms()
        token = claim["token"]
        coupon = Coupon(token=token, reward_id=reward.id, code=pool_code if reward.issue == "pool" else claim["code"],
                        claim_id=claim_id, issue=reward.issue, cost=reward.cost, issued_at_ms=now,
                        expires_at_ms=self._expiry(reward, now))
        await self.redis.set(keys.coupon(token), uid)  # the page's way to the coupon; harmless if never issued
        outcome, *rest = await self._finish(
            keys=[keys.claim(uid, claim_id), keys.ops(uid), keys.coupons(uid), keys.coupon_order(uid)],
            args=[op_field(self._op(claim_id)), coupon.to_json(), now])
        outcome = _s(outcome)
        if outcome in ("NEW", "DONE"):
            await self._commit(reward.id, claim_id)
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
            await self._release(reward.id, claim_id, uid)
            return ClaimResult(ok=False, reason=_s(rest[0]), reward=reward)
        raise RuntimeError(f"claim {claim_id} of {uid} cannot finish: {outcome}")

    async def _issued(self, uid: str, claim_id: str, reward: Reward | None) -> ClaimResult:
        """The answer to a claim confirmed before: the same coupon."""
        token = _s(await self.redis.hget(keys.claim(uid, claim_id), "token"))
        raw = await self.redis.hget(keys.coupons(uid), token)
        used = await self.redis.hget(keys.coupons_used(uid), token)
        coupon = Coupon.from_json(raw, int(used or 0))
        if reward is not None:  # repair what a crash after the coupon may have left undone
            await self.redis.set(keys.coupon(token), uid)
            await self._commit(reward.id, claim_id)
        view = await self.program.member(uid)
        return ClaimResult(ok=True, reward=reward, coupon=coupon, new=False, balance=view.points if view else None)

    async def release_stale(self, now_ms: int | None = None, older_than_minutes: int = STALE_MINUTES) -> int:
        """Settle reservations older than N minutes whose claim never finished (a crash between steps).

        A claim whose points were spent is completed (the member gets the coupon they paid for); any other is
        refused and its stock (or pool code) given back. Idempotent; returns how many were given back.
        Run it from the worker's periodic loop.
        """
        now = now_ms if now_ms is not None else self._now_ms()
        cutoff = now - older_than_minutes * 60_000
        released = 0
        for reward in self.rules.rewards:
            held = keys.reward_held(reward.id)
            for raw in await self.redis.zrangebyscore(held, "-inf", cutoff):
                claim_id = _s(raw)
                res = {_s(k): _s(v) for k, v in
                       (await self.redis.hgetall(keys.reward_reservation(reward.id, claim_id))).items()}
                uid = res.get("member")
                if not uid or res.get("state") != "held":
                    await self.redis.zrem(held, claim_id)
                    continue
                outcome = _s(await self._refuse_script(
                    keys=[keys.claim(uid, claim_id), keys.claimed(uid), keys.ops(uid)],
                    args=[UNKNOWN_CLAIM, op_field(self._op(claim_id)), now]))
                if outcome == "SPENT":
                    await self._complete(uid, claim_id, reward, res.get("code", ""))
                elif outcome == "DONE":
                    await self._commit(reward.id, claim_id)
                else:
                    released += await self._release(reward.id, claim_id, uid)
        return released

    # ---- coupons -----------------------------------------------------------------------
    async def coupons(self, uid: str, limit: int = 20) -> list[Coupon]:
        """The member's coupons, newest first."""
        tokens = [_s(t) for t in await self.redis.zrevrange(keys.coupon_order(uid), 0, limit - 1)]
        if not tokens:
            return []
        raws = await self.redis.hmget(keys.coupons(uid), tokens)
        used = await self.redis.hmget(keys.coupons_used(uid), tokens)
        return [Coupon.from_json(raw, int(u or 0)) for raw, u in zip(raws, used, strict=True) if raw]

    async def coupon(self, token: str) -> tuple[str, Coupon] | None:
        """(holder, coupon) for a coupon token, or None."""
        if not _TOKEN.match(token):
            return None
        owner = await self.redis.get(keys.coupon(token))
        if owner is None:
            return None
        uid = _s(owner)
        raw = await self.redis.hget(keys.coupons(uid), token)
        if raw is None:  # a claim that never completed
            return None
        used = await self.redis.hget(keys.coupons_used(uid), token)
        return uid, Coupon.from_json(raw, int(used or 0))

    async def use_coupon(self, token: str) -> tuple[str, Coupon]:
        """Staff mark a coupon used: once. Raises ProgramError UNKNOWN_COUPON, ALREADY_USED or COUPON_EXPIRED."""
        found = await self.coupon(token)
        if found is None:
            raise ProgramError("UNKNOWN_COUPON", "no coupon with that token")
        uid, coupon = found
        now = self._now_ms()
        if not coupon.used and coupon.expired(now):
            raise ProgramError("COUPON_EXPIRED", "this coupon has expired")
        if coupon.used or not await self.redis.hsetnx(keys.coupons_used(uid), token, now):
            used = int(await self.redis.hget(keys.coupons_used(uid), token) or 0)
            when = datetime.fromtimestamp(used / 1000, self.rules.timezone).isoformat(timespec="seconds")
            raise ProgramError("ALREADY_USED", f"this coupon was already used at {when}")
        return uid, replace(coupon, used_at_ms=now)

    def last_day(self, coupon: Coupon) -> date | None:
        """The last day (shop time) a coupon can be used on; None: it does not expire."""
        return self.day_of(coupon.expires_at_ms - 1) if coupon.expires_at_ms else None

    # ---- staff -------------------------------------------------------------------------
    def _reward(self, reward_id: str) -> Reward:
        reward = self.rules.reward(reward_id)
        if reward is None:
            raise ProgramError("UNKNOWN_REWARD", "the rules name no reward with that id")
        return reward

    async def add_stock(self, reward_id: str, count: int) -> Stock:
        """Staff add stock (negative: take some away, never below what is already taken)."""
        reward = self._reward(reward_id)
        if reward.stock is None:
            raise ProgramError("UNLIMITED_STOCK", "this reward has no stock limit"
                               + (": its stock is its code pool" if reward.issue == "pool" else ""))
        ok, left = await self._add_stock(keys=[keys.reward_stock(reward.id)], args=[count, reward.stock])
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
