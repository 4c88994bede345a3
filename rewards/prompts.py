"""Prompts' bookkeeping: the weekly cap and once-per-cause gate (prompt_gate.lua, in the member's slot), the
referred friends' reminder schedule (a zset by due time, so the clock reads only what is due) and the reward
costs a member was already told they can afford. What a prompt says and when one follows an outcome is
bot/prompts.py's; this part only counts and remembers."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rewards import engine, keys
from rewards.part import Part
from rewards.rules import Rules

# Gate answers (prompt_gate.lua): send it now (OK), send it again with the same retry key (AGAIN), or not at all.
SEND = ("OK", "AGAIN")


def afford_cause(cost: int) -> str:
    return f"o:afford:{cost}"  # once ever per reward cost: never again after falling below and rising again


REMIND_CAUSE = "o:remind"  # once ever per friend


class Prompts(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int]):
        super().__init__(redis, rules, now_ms)
        self._gate = self.script("prompt_gate")

    def weeks(self) -> tuple[str, str]:
        """This ISO week and the one before, in shop time ("2027-W22", "2027-W21")."""
        now = engine.shop_time(self.rules, self.now_ms())
        this, last = now.isocalendar(), (now.replace(hour=12) - timedelta(days=7)).isocalendar()
        return f"{this.year}-W{this.week:02d}", f"{last.year}-W{last.week:02d}"

    async def gate(self, uid: str, cause: str, may_start: bool = True) -> str:
        """Let a prompt through once per cause and within the weekly cap: OK | AGAIN | DONE | SKIP | CAPPED
        (prompt_gate.lua). `may_start` False (a repeated outcome): only a prompt already let through goes on."""
        week, last_week = self.weeks()
        answer = await self._gate(keys=[keys.prompts(uid)],
                                  args=[cause, week, last_week, self.rules.prompts.weekly_cap, int(may_start)])
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    async def handed(self, uid: str, *causes: str) -> None:
        """The prompt went to LINE (or was kept for after quiet hours): a repeat of its cause sends nothing."""
        week, _ = self.weeks()
        await self.redis.hset(keys.prompts(uid), mapping={cause: f"{week}:d" for cause in causes})

    async def told(self, uid: str, causes: list[str]) -> set[str]:
        """Which of these causes were let through before (the reward costs already told, say)."""
        if not causes:
            return set()
        values = await self.redis.hmget(keys.prompts(uid), causes)
        return {cause for cause, value in zip(causes, values, strict=True) if value is not None}

    # ---- the referred friend's one reminder ------------------------------------------------------------
    async def schedule_reminder(self, friend: str, due_ms: int) -> None:
        """Due once; scheduling again (the attribution handled again) keeps the first due time."""
        await self.redis.zadd(keys.REMINDERS_DUE, {friend: due_ms}, nx=True)

    async def reminders_due(self, now_ms: int, limit: int) -> list[str]:
        due = await self.redis.zrangebyscore(keys.REMINDERS_DUE, "-inf", now_ms, start=0, num=limit)
        return [uid.decode() if isinstance(uid, bytes) else uid for uid in due]

    async def reminder_handled(self, friend: str) -> None:
        await self.redis.zrem(keys.REMINDERS_DUE, friend)

    async def reminders_scheduled(self) -> int:
        return int(await self.redis.zcard(keys.REMINDERS_DUE))

    async def waiting_for_first_order(self, friend: str) -> bool:
        """Referred, the referral still pending, and no order on record: what the reminder is for."""
        status = await self.redis.hget(keys.referral(friend), "status")
        first_order = await self.redis.hget(keys.member(friend), keys.field("first_order"))
        return status == b"pending" and first_order is None
