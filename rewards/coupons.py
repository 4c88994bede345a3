"""Coupons a claim issued: what each holds, how long it is good for, and staff marking one used (once)."""
from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from rewards import codes, keys
from rewards.errors import ProgramError
from rewards.part import Part
from rewards.rules import Reward, Rules

CODE_LENGTH = 10  # generated coupon codes: 10 characters (never mistaken for an 8-character invite code)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_coupon_code() -> str:
    """ABCDE-23456: ten characters nobody has to squint at (no 0/O, 1/I)."""
    raw = "".join(secrets.choice(codes.ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def valid_through(rules: Rules, valid_days: int | None, now_ms: int) -> int:
    """When a coupon given at `now_ms` stops working: the end of the day `valid_days` later, shop time; 0: never."""
    if not valid_days:
        return 0
    day = datetime.fromtimestamp(now_ms / 1000, rules.timezone).date()
    end = datetime.combine(day + timedelta(days=valid_days + 1), datetime.min.time(), tzinfo=rules.timezone)
    return int(end.timestamp() * 1000)


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


class CouponBook(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int]):
        super().__init__(redis, rules, now_ms)
        self._use = self.script("coupon_use")

    def day_of(self, at_ms: int) -> date:
        """The shop's calendar day at a moment."""
        return datetime.fromtimestamp(at_ms / 1000, self.rules.timezone).date()

    def expires_at(self, reward: Reward, now_ms: int) -> int:
        """Usable through the end of the day `valid_days` after the claim, in the shop's time zone."""
        return valid_through(self.rules, reward.valid_days, now_ms)

    def last_day(self, coupon: Coupon) -> date | None:
        """The last day (shop time) a coupon can be used on; None: it does not expire."""
        return self.day_of(coupon.expires_at_ms - 1) if coupon.expires_at_ms else None

    async def coupons(self, uid: str, limit: int = 20) -> list[Coupon]:
        """The member's coupons, newest first."""
        tokens = [t.decode() for t in await self.redis.zrevrange(keys.coupon_order(uid), 0, limit - 1)]
        if not tokens:
            return []
        raws = await self.redis.hmget(keys.coupons(uid), tokens)
        used = await self.redis.hmget(keys.coupons_used(uid), tokens)
        return [Coupon.from_json(raw, int(u or 0)) for raw, u in zip(raws, used, strict=True) if raw]

    async def held(self, uid: str, token: str) -> Coupon | None:
        """The member's coupon with that token, None when no claim completed with it."""
        raw = await self.redis.hget(keys.coupons(uid), token)
        if raw is None:
            return None
        used = await self.redis.hget(keys.coupons_used(uid), token)
        return Coupon.from_json(raw, int(used or 0))

    async def coupon(self, token: str) -> tuple[str, Coupon] | None:
        """(holder, coupon) for a coupon token, or None."""
        if not _TOKEN.match(token):
            return None
        owner = await self.redis.get(keys.coupon(token))
        if owner is None:
            return None
        uid = owner.decode()
        coupon = await self.held(uid, token)  # None: a claim that never completed
        return (uid, coupon) if coupon is not None else None

    async def use_coupon(self, token: str, op: str) -> tuple[str, Coupon]:
        """Staff mark a coupon used: once. `op` names this use (an event, a request's Idempotency-Key): a retry
        of it is answered as the use it repeats, anyone else with ALREADY_USED.

        Raises ProgramError UNKNOWN_COUPON, ALREADY_USED or COUPON_EXPIRED."""
        found = await self.coupon(token)
        if found is None:
            raise ProgramError("UNKNOWN_COUPON", "no coupon with that token")
        uid, coupon = found
        now = self.now_ms()
        if not coupon.used and coupon.expired(now):
            raise ProgramError("COUPON_EXPIRED", "this coupon has expired")
        _, used_at, used_by = await self._use(keys=[keys.coupons_used(uid)], args=[token, now, op])
        if used_by.decode() != op:
            when = datetime.fromtimestamp(int(used_at) / 1000, self.rules.timezone).isoformat(timespec="seconds")
            raise ProgramError("ALREADY_USED", f"this coupon was already used at {when}")
        return uid, replace(coupon, used_at_ms=int(used_at))
