"""Whether the work is being done: live workers, events queued and not yet finished, the oldest one's age.

Read by /healthz and /metrics (both served here). One pipeline of plain single-key reads (no MULTI): the
partitions sit in different hash slots, and a cluster pipeline sends each read to its own node.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from bot.config import Settings
from bot.infra import keys
from bot.infra.metrics import Metrics
from bot.services import Services
from bot.web.http import OUTAGE

log = logging.getLogger(__name__)

NO_LIVE_WORKER = "no_live_worker"  # events wait and no worker has beaten within its lease
QUEUE_STALE = "queue_stale"  # the oldest queued event waited longer than settings.health_max_queue_age_seconds
TIMEOUT_SECONDS = 1.0  # /healthz and /metrics give up on Redis after this


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
        # live as bot/intake/worker.py's _beat prunes: a score older than a lease is a gone worker
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


def setup(app: web.Application, services_key: web.AppKey[Services], metrics: Metrics) -> None:
    """GET /healthz and GET /metrics."""

    async def work_health() -> WorkHealth:
        services = app[services_key]
        return await asyncio.wait_for(read(services.redis, services.settings), TIMEOUT_SECONDS)

    async def healthz(request: web.Request) -> web.Response:
        # 503 only when Redis does not answer (the contract); dead workers or a stuck queue are "degraded", 200
        # the body stays generic (anyone may call it): the cause, with Redis's address, goes to the log
        try:
            work = await work_health()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            request.app[OUTAGE].failed("GET /healthz", exc)
            return web.json_response({"status": "unavailable"}, status=503)
        request.app[OUTAGE].answered()
        if work.reasons:
            log.warning("healthz degraded (%s): %d workers, %d queued, oldest %.1f s", ", ".join(work.reasons),
                        work.workers, work.queued, work.oldest_queued_seconds)
        return web.json_response({"redis": "ok", **work.as_json()})

    async def prometheus(request: web.Request) -> web.Response:
        try:
            work = await work_health()
            figures: tuple[float, ...] = (work.workers, work.queued, work.oldest_queued_seconds)
        except (RedisError, OSError, asyncio.TimeoutError):
            figures = (float("nan"),) * 3  # unknown, not a stale figure
        for gauge, value in zip((metrics.workers_live, metrics.events_queued, metrics.oldest_queued_seconds),
                                figures, strict=True):
            gauge.set(value)
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
