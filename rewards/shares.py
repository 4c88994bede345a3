"""Shares from the LIFF page (liff.shareTargetPicker): each one completed counts once per person, code and
shop-time day, however often the page reports it, feeding the funnel shares → joins → purchases (stats)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewards import engine, keys
from rewards.counters import Counters
from rewards.experiments import Experiments
from rewards.part import Part
from rewards.rules import Rules

SHARES_KEPT_SECONDS = 2 * 86_400  # a day's set outlives its day (shop time), then goes


class Shares(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters,
                 experiments: Experiments | None = None):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self.experiments = experiments

    async def record(self, uid: str, code: str) -> bool:
        """True when this share was counted now; False when this person shared this code today already."""
        day = engine.shop_time(self.rules, self.now_ms()).strftime("%Y-%m-%d")
        key = keys.shares_day(day)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(key, f"{uid}|{code}")
            pipe.expire(key, SHARES_KEPT_SECONDS)
            added, _ = await pipe.execute()
        if added:
            await self.counters.count("shares")
            if self.experiments is not None:  # under the sharer's arm, while an experiment runs
                await self.experiments.count(uid, "shares")
        return bool(added)
