"""The program's counters: each a running total and the shop-time day's, which rewards/stats.py reports."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewards import buckets, engine, keys
from rewards.part import Part
from rewards.rules import Rules

DAY_KEPT_SECONDS = 400 * 86_400


class Counters(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int]):
        super().__init__(redis, rules, now_ms)

    async def count(self, name: str, by: int = 1) -> None:
        """A program counter: the running total and the shop-time day's (kept 400 days, for the stats)."""
        day = keys.stats_day(engine.shop_time(self.rules, self.now_ms()).strftime("%Y-%m-%d"))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(keys.STATS, name, by)
            pipe.hincrby(day, name, by)
            pipe.expire(day, DAY_KEPT_SECONDS)
            await pipe.execute()

    async def totals(self) -> dict[str, int]:
        """Every running total, and how many members there are."""
        raw = await self.redis.hgetall(keys.STATS)
        out = {k.decode(): int(v) for k, v in raw.items()}
        out["members"] = await buckets.member_count(self.redis)
        return out
