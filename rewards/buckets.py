"""The member list and the due schedule, each spread over keys.BUCKETS small keys (keys.members, keys.due):
what reads them whole goes over every bucket in one pipeline."""
from __future__ import annotations

import heapq
from typing import Any

from rewards import keys


async def add_member(redis: Any, uid: str) -> None:
    await redis.hset(keys.members(uid), uid, "")


async def member_ids(redis: Any) -> list[str]:
    """Every member id, in no particular order."""
    async with redis.pipeline(transaction=False) as pipe:
        for name in keys.MEMBER_BUCKETS:
            pipe.hkeys(name)
        return [uid.decode() for ids in await pipe.execute() for uid in ids]


async def member_count(redis: Any) -> int:
    async with redis.pipeline(transaction=False) as pipe:
        for name in keys.MEMBER_BUCKETS:
            pipe.hlen(name)
        return sum(await pipe.execute())


async def is_member(redis: Any, uid: str) -> bool:
    return bool(await redis.hexists(keys.members(uid), uid))


async def due_between(redis: Any, low: int | str, high: int | str, limit: int | None = None) -> list[str]:
    """The members due between `low` and `high` (ms, or '-inf'/'+inf'), soonest first, at most `limit`."""
    async with redis.pipeline(transaction=False) as pipe:
        for name in keys.DUE_BUCKETS:
            if limit is None:
                pipe.zrangebyscore(name, low, high, withscores=True)
            else:  # the soonest `limit` of all are among each bucket's soonest `limit`
                pipe.zrangebyscore(name, low, high, start=0, num=limit, withscores=True)
        rows = await pipe.execute()
    soonest = heapq.merge(*rows, key=lambda row: row[1])
    return [uid.decode() for uid, _ in (soonest if limit is None else list(soonest)[:limit])]
