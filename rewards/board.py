"""The referrer boards: the month's (members see its top) and the all-time one (the stats' top referrers).

Both only copy counts that moved once, in referrer_step.lua, so writing them again never counts twice.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards import engine, keys
from rewards.names import NAME_FIELDS, shown_nickname
from rewards.part import Part
from rewards.rules import Rules


@dataclass(frozen=True)
class Ranked:
    user_id: str
    completed: int
    nickname: str | None  # only when the member consented to show it (rewards/names.py)


class Board(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int]):
        super().__init__(redis, rules, now_ms)

    def month_of(self, at_ms: int | None = None) -> str:
        """YYYY-MM in the shop's time zone."""
        return engine.shop_time(self.rules, at_ms if at_ms is not None else self.now_ms()).strftime("%Y-%m")

    async def leaderboard(self, month: str | None = None, top: int = 10) -> list[Ranked]:
        """Read only: the month's top referrers by completed referrals, with what may be shown of them."""
        board = await self.redis.zrevrange(keys.leaderboard(month or self.month_of()), 0, top - 1, withscores=True)
        out = []
        for raw, score in board:
            uid = raw.decode()
            nickname, consent = await self.redis.hmget(keys.member(uid), NAME_FIELDS)
            out.append(Ranked(user_id=uid, completed=int(score), nickname=shown_nickname(nickname, consent)))
        return out

    async def rank_month(self, referrer: str, friend: str, only_up: bool) -> None:
        """Copy the referrer's count for the month the referral completed into that month's board.

        The count itself moved once, in referrer_step.lua; this only copies it, so a re-run writes the
        same number again and never counts twice. A completion only raises the score (GT), so two of the
        referrer's referrals completing side by side cannot leave the older, lower count last."""
        month = await self.redis.hget(keys.referrals_made(referrer), f"{friend}|month")
        if not month:
            return
        month = month.decode()
        count = int(await self.redis.hget(keys.member(referrer), keys.field(f"ranked:{month}")) or 0)
        if count > 0:
            await self.redis.zadd(keys.leaderboard(month), {referrer: count}, gt=only_up)
        else:
            await self.redis.zrem(keys.leaderboard(month), referrer)

    async def rank_all_time(self, referrer: str, only_up: bool) -> None:
        """Copy the referrer's completed count (moved once, in referrer_step.lua) into the all-time board:
        a re-run or a sweep racing an order writes the same number, never one more. GT as in rank_month."""
        count = int(await self.redis.hget(keys.member(referrer), keys.field("referrals_completed")) or 0)
        if count > 0:
            await self.redis.zadd(keys.TOP_REFERRERS, {referrer: count}, gt=only_up)
        else:
            await self.redis.zrem(keys.TOP_REFERRERS, referrer)
