"""Whether the work is being done: live workers, events queued and not yet finished, the oldest one's age.

Read by /healthz and /metrics. One pipeline of plain single-key reads (no MULTI): the partitions sit in
different hash slots, and a cluster pipeline sends each read to its own node.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.infra import keys

NO_LIVE_WORKER = "no_live_worker"  # events wait and no worker has beaten within its lease
QUEUE_STALE = "queue_stale"  # the oldest queued event waited longer than settings.health_max_queue_age_seconds


@dataclass(frozen=True)
class WorkHealth:
    workers: int  # workers whose last heartbeat is younger than a lease
    queued: int  # events received and not finished (finish.lua XDELs an entry, so XLEN counts exactly these)
    oldest_queued_seconds: float  # 0 when nothing waits
    reasons: tuple[str, ...]  # why it is degraded; empty when ok

    @property
    def status(self) -> str:
        return "degraded" if self.reasons else "ok"

    def as_json(self) -> dict[str, object]:
        return {"status": self.status, "workers": self.workers, "queued": self.queued,
                "oldest_queued_seconds": self.oldest_queued_seconds, "reasons": list(self.reasons)}


def _entry_ms(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])


async def read(redis: Any, settings: Settings, now_ms: int | None = None) -> WorkHealth:
    """Raises RedisError when Redis does not answer. `now_ms` is this process's clock, as the heartbeats are;
    stream ids carry the Redis server's, so the age assumes the clocks agree (as leases already do)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    partitions = range(settings.stream_partitions)
    async with redis.pipeline(transaction=False) as pipe:
        # live as bot/worker.py's _beat prunes: a score older than a lease is a gone worker
        pipe.zcount(keys.WORKERS, f"({now_ms - settings.lease_ms}", "+inf")
        for p in partitions:
            pipe.xlen(keys.stream(p))
            pipe.xrange(keys.stream(p), count=1)  # the lowest id left is the oldest unfinished event
        replies = await pipe.execute()
    workers = int(replies[0])
    queued = sum(int(n) for n in replies[1::2])
    firsts = [_entry_ms(entries[0][0]) for entries in replies[2::2] if entries]
    oldest = round(max(0, now_ms - min(firsts)) / 1000, 1) if firsts else 0.0
    reasons = []
    if queued and not workers:
        reasons.append(NO_LIVE_WORKER)
    if oldest > settings.health_max_queue_age_seconds:
        reasons.append(QUEUE_STALE)
    return WorkHealth(workers=workers, queued=queued, oldest_queued_seconds=oldest, reasons=tuple(reasons))
