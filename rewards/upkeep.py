"""Clock work, run by the worker: held points released and old ones expired (maintain.lua) for the members
the due buckets (keys.due) name, warnings before expiry, and the yearly birthday points."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewards import buckets, engine, keys
from rewards.counters import Counters
from rewards.ledger import Ledger
from rewards.members import Members
from rewards.part import Part
from rewards.rules import Rules


class Upkeep(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters, ledger: Ledger,
                 members: Members):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self.ledger = ledger
        self.members = members
        self._maintain = self.script("maintain", moves_points=True)

    async def maintain(self, uid: str, now_ms: int | None = None) -> tuple[int, int]:
        """Release held points whose time came and expire old ones: (released, expired). Idempotent."""
        now = now_ms if now_ms is not None else self.now_ms()
        inactivity_ms = self.ledger.inactivity_ms
        released, expired, due = await self._maintain(keys=keys.ledger_keys(uid),
                                                      args=[now, self.rules.expiry, inactivity_ms])
        if self.rules.expiry == "inactivity" and int((await self.redis.hget(keys.member(uid), keys.field("points"))) or 0) > 0:
            last = int((await self.redis.hget(keys.member(uid), keys.field("last_activity"))) or now)
            due = min(int(due) or 2**62, last + inactivity_ms)
        if int(due):
            await self.redis.zadd(keys.due(uid), {uid: int(due)})
        else:
            await self.redis.zrem(keys.due(uid), uid)
        if expired:
            await self.counters.count("points_expired", int(expired))
        return int(released), int(expired)

    async def maintain_due(self, now_ms: int | None = None, limit: int = 1000,
                           expired: list[tuple[str, int]] | None = None) -> int:
        """The clock job: every member with something due by now. Returns how many were looked at; `expired`,
        when given, gets (member, points) for each member whose points expired now."""
        now = now_ms if now_ms is not None else self.now_ms()
        due = await buckets.due_between(self.redis, "-inf", now, limit)
        for uid in due:
            _, lost = await self.maintain(uid, now)
            if lost and expired is not None:
                expired.append((uid, lost))
        return len(due)

    async def expiring_soon(self, now_ms: int | None = None) -> list[tuple[str, int, int]]:
        """Members to warn: (member, points expiring, when), once per expiry date."""
        if not self.rules.warning_days or self.rules.expiry == "never":
            return []
        now = now_ms if now_ms is not None else self.now_ms()
        horizon = now + self.rules.warning_days * 86_400_000
        out = []
        for uid in await buckets.due_between(self.redis, now, horizon):
            lots = await self.ledger.queued_lots(uid)
            if not lots or lots[0].expires_at > horizon:
                continue
            when = lots[0].expires_at
            if int(await self.redis.hget(keys.WARNED, uid) or 0) == when:
                continue
            out.append((uid, sum(lot.remaining for lot in lots if lot.expires_at <= when), when))
        return out

    async def expiring(self, uid: str) -> tuple[int, int] | None:
        """Read only: (points, when) of the member's soonest expiry within the warning window, or None."""
        if self.rules.expiry == "never":
            return None
        horizon = self.now_ms() + max(self.rules.warning_days, 30) * 86_400_000
        lots = await self.ledger.queued_lots(uid)
        if not lots or lots[0].expires_at > horizon:
            return None
        when = lots[0].expires_at
        points = sum(lot.remaining for lot in lots if lot.expires_at <= when)
        return (points, when) if points > 0 else None

    async def mark_warned(self, uid: str, when_ms: int) -> None:
        await self.redis.hset(keys.WARNED, uid, when_ms)

    async def birthdays_due(self, now_ms: int | None = None) -> int:
        """The yearly birthday points for everyone whose birthday month it is (op `birthday:{year}`)."""
        now = now_ms if now_ms is not None else self.now_ms()
        month = engine.shop_time(self.rules, now).month
        paid = 0
        for raw in await self.redis.smembers(keys.birthdays(month)):
            paid += 1 if await self.members.birthday_points(raw.decode(), now) else 0
        return paid
