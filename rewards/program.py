"""The referral and rewards program, applied atomically in Redis.

Every write that decides something runs as one Lua script over one member's keys (one cluster slot).
Work that spans two members — a referral pays both sides — is a sequence of idempotent single-member
steps driven by the friend's referral record, so it finishes after a crash and never pays twice.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards import codes, keys
from rewards.rules import Rules

_LUA = Path(__file__).resolve().parent / "lua"

# Refusal reasons for a code message, in the order they are checked.
SELF_REFERRAL = "SELF_REFERRAL"
ALREADY_REFERRED = "ALREADY_REFERRED"
EXISTING_CUSTOMER = "EXISTING_CUSTOMER"
EXISTING_MEMBER = "EXISTING_MEMBER"
UNKNOWN_CODE = "UNKNOWN_CODE"
EXPIRED = "EXPIRED"
RATE_LIMITED = "RATE_LIMITED"


class ProgramError(Exception):
    """A request the program refuses; `code` is stable, `message` is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Attribution:
    ok: bool
    reason: str | None = None  # a refusal reason code when not ok
    referrer: str | None = None
    replay: bool = False  # the same event again: already recorded, nothing new happened


@dataclass(frozen=True)
class Referrals:
    invited: int
    pending: int
    completed: int


@dataclass(frozen=True)
class MemberView:
    user_id: str
    points: int
    pending_points: int
    lifetime_points: int
    tier: str
    next_tier: str | None
    points_to_next_tier: int | None
    referrals: Referrals
    code: str | None
    blocked: bool
    lang: str | None


@dataclass(frozen=True)
class LedgerLine:
    delta: int
    kind: str
    rule: str
    at_ms: int
    balance: int


@dataclass(frozen=True)
class Purchase:
    answer: dict[str, Any]  # exactly what the first call answered
    new: bool
    completed_referral_of: str | None  # the referrer, when this order completed a referral


def _load(name: str, with_ledger: bool = False) -> str:
    source = (_LUA / f"{name}.lua").read_text()
    return ((_LUA / "ledger.lua").read_text() + "\n" + source) if with_ledger else source


class Program:
    def __init__(self, redis: Any, rules: Rules, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.rules = rules
        self.clock = clock
        self._seen = redis.register_script(_load("member_seen"))
        self._apply = redis.register_script(_load("apply_points", with_ledger=True))
        self._attribute = redis.register_script(_load("attribute"))
        self._purchase = redis.register_script(_load("purchase", with_ledger=True))
        self._refund = redis.register_script(_load("refund", with_ledger=True))
        self._referrer_step = redis.register_script(_load("referrer_step", with_ledger=True))

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ---- members ---------------------------------------------------------------------
    async def see(self, uid: str, via: str, at_ms: int, lang: str = "") -> bool:
        """Record a sighting (follow, unblock, unfollow, message, postback); True when the member is new."""
        created = await self._seen(keys=[keys.member(uid)], args=[uid, via, at_ms, lang])
        if created:
            await self.redis.sadd(keys.MEMBERS, uid)
        return bool(created)

    async def welcome_points(self, uid: str, at_ms: int) -> int:
        """Signup points, once per member whatever happens later (op id `signup`)."""
        if self.rules.signup_points <= 0:
            return 0
        written, _ = await self.apply(uid, "signup", self.rules.signup_points, "signup", "signup", at_ms)
        return self.rules.signup_points if written == 1 else 0

    async def apply(self, uid: str, op: str, delta: int, kind: str, rule: str, at_ms: int,
                    note: str = "", allow_negative: bool = False) -> tuple[int, int]:
        """One ledger entry with its operation id: (1 written | 0 already done | -1 refused, balance)."""
        written, balance = await self._apply(
            keys=[keys.member(uid), keys.ledger(uid), keys.ops(uid)],
            args=[op, delta, kind, rule, at_ms, note, "1" if allow_negative else "0"])
        return int(written), int(balance)

    async def exists(self, uid: str) -> bool:
        return bool(await self.redis.exists(keys.member(uid)))

    async def language(self, uid: str) -> str | None:
        lang = await self.redis.hget(keys.member(uid), "lang")
        return lang.decode() if lang else None

    async def set_language(self, uid: str, lang: str) -> None:
        await self.redis.hset(keys.member(uid), "lang", lang)

    async def member(self, uid: str) -> MemberView | None:
        fields = await self.redis.hgetall(keys.member(uid))
        if not fields:
            return None
        m = {k.decode(): v.decode() for k, v in fields.items()}
        made = [s.decode() for s in await self.redis.hvals(keys.referrals_made(uid))]
        lifetime = int(m.get("lifetime", 0))
        tier = self.rules.tier_for(lifetime)
        higher = [t for t in self.rules.tiers if t.min_lifetime_points > lifetime]
        return MemberView(
            user_id=uid, points=int(m.get("points", 0)), pending_points=int(m.get("pending_points", 0)),
            lifetime_points=lifetime, tier=tier.name,
            next_tier=higher[0].name if higher else None,
            points_to_next_tier=higher[0].min_lifetime_points - lifetime if higher else None,
            referrals=Referrals(invited=len(made), pending=made.count("pending"),
                                completed=made.count("completed")),
            code=m.get("code"), blocked=m.get("blocked") == "1", lang=m.get("lang"))

    async def recent_ledger(self, uid: str, count: int = 5) -> list[LedgerLine]:
        raw = await self.redis.lrange(keys.ledger(uid), -count, -1)
        lines = [json.loads(r) for r in reversed(raw)]
        return [LedgerLine(e["delta"], e["kind"], e["rule"], e["at"], e["balance"]) for e in lines]

    async def adjust(self, uid: str, points: int, reason: str, staff: str, op: str) -> tuple[bool, int]:
        """A manual adjustment by staff; may take the balance below zero (a correction is a correction)."""
        if not await self.exists(uid):
            raise ProgramError("UNKNOWN_MEMBER", "no member with that user id")
        written, balance = await self.apply(uid, op, points, "adjustment", f"staff:{staff}", self._now_ms(),
                                            note=reason, allow_negative=True)
        return written == 1, balance

    # ---- invite codes ----------------------------------------------------------------
    async def invite_code(self, uid: str) -> str:
        """The member's invite code, minted on first use."""
        current = await self.redis.hget(keys.member(uid), "code")
        if current:
            return str(current.decode())
        while True:
            candidate = codes.new_code()
            if await self.redis.set(keys.code(candidate), uid, nx=True):
                break
        # Two racing calls may both mint a code; the first to land wins and the loser's code
        # still points at the same member, so a link already sent never breaks.
        if await self.redis.hsetnx(keys.member(uid), "code", candidate):
            return candidate
        return str((await self.redis.hget(keys.member(uid), "code")).decode())

    async def owner_of(self, code: str) -> str | None:
        owner = await self.redis.get(keys.code(codes.normalise(code)))
        return owner.decode() if owner else None

    # ---- referrals -------------------------------------------------------------------
    async def attribute(self, friend: str, code: str, op: str) -> Attribution:
        """A code message from `friend`: attribute them to the code's owner, or say why not."""
        guess_key = keys.guesses(friend)
        failures = int(await self.redis.get(guess_key) or 0)
        if failures >= self.rules.guess_max_failures:
            return await self._refused(RATE_LIMITED)
        referrer = await self.owner_of(code)
        if referrer is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(guess_key)
                pipe.ttl(guess_key)
                _, ttl = await pipe.execute()
            if ttl < 0:  # the window starts with the first failure (EXPIRE NX needs Redis 7)
                await self.redis.expire(guess_key, self.rules.guess_per_minutes * 60)
            return await self._refused(UNKNOWN_CODE)
        if referrer == friend:
            return await self._refused(SELF_REFERRAL)
        outcome, recorded_referrer, replay = await self._attribute(
            keys=[keys.member(friend), keys.referral(friend)],
            args=[referrer, code, op, self._now_ms(), self.rules.referral_window_ms])
        outcome = outcome.decode()
        if outcome != "OK":
            return await self._refused(outcome)
        # The referrer's half; on a replay it is simply written again.
        await self._referrer_step(keys=self._referrer_keys(referrer),
                                  args=[friend, "pending", f"referral-pending:{friend}", 0, self._now_ms()])
        if not replay:
            await self.redis.hincrby(keys.STATS, "referrals_pending", 1)
        return Attribution(ok=True, referrer=recorded_referrer.decode(), replay=bool(replay))

    async def _refused(self, reason: str) -> Attribution:
        await self.redis.hincrby(keys.STATS, f"refused:{reason}", 1)
        return Attribution(ok=False, reason=reason)

    def _referrer_keys(self, referrer: str) -> list[str]:
        return [keys.member(referrer), keys.ledger(referrer), keys.ops(referrer), keys.referrals_made(referrer)]

    async def settle(self, friend: str) -> str | None:
        """Finish the referrer's side of the friend's referral; returns the referrer when it paid just now.

        Safe to call any number of times: each step is keyed by an operation id.
        """
        ref = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(keys.referral(friend))).items()}
        status, referrer = ref.get("status"), ref.get("referrer")
        paid_now = None
        if referrer and status == "completed" and not ref.get("referrer_paid"):
            written = await self._referrer_step(
                keys=self._referrer_keys(referrer),
                args=[friend, "completed", f"referral:{friend}", self.rules.referrer_points, self._now_ms()])
            await self.redis.hset(keys.referral(friend), mapping={"referrer_paid": self.rules.referrer_points})
            if written == 1:
                await self.redis.hincrby(keys.STATS, "referrals_completed", 1)
                paid_now = referrer
        elif referrer and status == "voided" and ref.get("referrer_paid") and not ref.get("referrer_reversed"):
            await self._referrer_step(
                keys=self._referrer_keys(referrer),
                args=[friend, "voided", f"refund:referral:{friend}", -int(ref["referrer_paid"]), self._now_ms()])
            await self.redis.hset(keys.referral(friend), mapping={"referrer_reversed": 1})
        await self.redis.srem(keys.SETTLE, friend)
        return paid_now

    async def settle_all(self) -> int:
        """Finish every referral a crash left half done (run by the worker now and then)."""
        friends = [f.decode() for f in await self.redis.smembers(keys.SETTLE)]
        for friend in friends:
            await self.settle(friend)
        return len(friends)

    # ---- orders ----------------------------------------------------------------------
    async def record_purchase(self, order_id: str, uid: str, amount: int, at_ms: int | None = None) -> Purchase:
        """An order reported by the shop: purchase points, and a pending referral completes on the first."""
        owner_key = keys.order_owner(order_id)
        if not await self.redis.set(owner_key, uid, nx=True):
            owner = (await self.redis.get(owner_key)).decode()
            if owner != uid:
                raise ProgramError("ORDER_CONFLICT", "this order_id was already reported for another member")
        at = at_ms if at_ms is not None else self._now_ms()
        await self.see(uid, "purchase", at)
        await self.redis.sadd(keys.SETTLE, uid)  # the intent, written before the step it guards
        new, raw = await self._purchase(
            keys=[keys.member(uid), keys.ledger(uid), keys.ops(uid), keys.orders(uid), keys.referral(uid)],
            args=[order_id, amount, self.rules.purchase_points(amount), at, self.rules.friend_points,
                  self.rules.referral_minimum_order])
        answer = json.loads(raw)
        paid_referrer = await self.settle(uid)
        if new:
            await self.redis.hincrby(keys.STATS, "orders", 1)
            await self.redis.hincrby(keys.STATS, "revenue_yen", amount)
        return Purchase(answer=answer, new=bool(new), completed_referral_of=paid_referrer)

    async def refund(self, order_id: str) -> tuple[str, int]:
        """Reverse what an order awarded, once: ("OK" | "ALREADY_REFUNDED", points reversed)."""
        owner = await self.redis.get(keys.order_owner(order_id))
        if owner is None:
            raise ProgramError("UNKNOWN_ORDER", "no order with that order_id was reported")
        uid = owner.decode()
        await self.redis.sadd(keys.SETTLE, uid)
        outcome, reversed_points = await self._refund(
            keys=[keys.member(uid), keys.ledger(uid), keys.ops(uid), keys.orders(uid), keys.referral(uid)],
            args=[order_id, self._now_ms()])
        await self.settle(uid)
        outcome = outcome.decode()
        if outcome == "UNKNOWN_ORDER":  # the owner key landed but the order never did: a crash mid-report
            raise ProgramError("UNKNOWN_ORDER", "no order with that order_id was recorded")
        return outcome, int(reversed_points)

    async def audit(self, who: str, what: str, member: str, **details: Any) -> None:
        """Append-only record of a staff action: who, what, when, before/after."""
        entry = {"who": who, "what": what, "member": member, "at": self._now_ms(), **details}
        await self.redis.xadd(keys.AUDIT, {k: str(v) for k, v in entry.items()})

    async def active_members(self) -> list[str]:
        """Every member who has not blocked the account."""
        members = [m.decode() for m in await self.redis.smembers(keys.MEMBERS)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in members:
                pipe.hget(keys.member(uid), "blocked")
            blocked = await pipe.execute()
        return sorted(uid for uid, b in zip(members, blocked, strict=True) if b != b"1")

    async def count(self, name: str, by: int = 1) -> None:
        await self.redis.hincrby(keys.STATS, name, by)

    async def stats(self) -> dict[str, int]:
        raw = await self.redis.hgetall(keys.STATS)
        out = {k.decode(): int(v) for k, v in raw.items()}
        out["members"] = int(await self.redis.scard(keys.MEMBERS))
        return out
