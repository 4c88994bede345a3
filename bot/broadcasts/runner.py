"""Sending broadcasts: BroadcastRunner, in every worker, runs the jobs Broadcasts (service.py) queued.

How a job runs (one runner per job at a time, through a lease):
  1. start: the segment is evaluated and the recipients fixed in Redis as batches of ≤ 500 with identical
     rendered messages (personalised texts are grouped by what they render to).
  2. per batch: its X-Line-Retry-Key (a uuid4) is written before the batch is sent; after LINE accepts it,
     progress moves (broadcast_step.lua, guarded by the batch index). A restarted job re-sends its first
     unfinished batch with the same key, which LINE answers 409 when it had landed: counted as sent.
  3. pacing: at most `broadcast_rate` multicast requests per second per worker (BROADCAST_RATE, default 100,
     LINE allows 200), `broadcast_concurrency` in flight. 429/5xx back off in bot/line/client.py; if LINE keeps
     failing the job waits and is tried again. A monthly-quota 429 pauses the job (status "paused", reason
     MONTHLY_LIMIT); POST …/resume carries on where it stopped. Cancel stops it between batches.
  LINE's broadcast endpoint is not used: it reaches every friend including ones the bot has never seen, allows
  60 requests an hour, and gives one retry key for everything, so "who got it" could not be told per member.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from bot.broadcasts.service import Broadcasts, lua_script, placeholders_in
from bot.infra import keys
from bot.infra.leases import Leases
from bot.line.client import LineRejected, MonthlyLimitReached
from bot.line.limits import MULTICAST_TO_MAX
from bot.services import Services
from rewards import segments
from rewards.segments import SegmentError

log = logging.getLogger(__name__)

RETRY_LATER_MS = 30_000  # LINE kept failing after every backoff: try the job again this much later


class BatchRefused(Exception):
    """LINE refused a batch for good (a 4xx other than 409/429): its recipients count as failed."""

    def __init__(self, recipients: int, why: str):
        super().__init__(why)
        self.recipients = recipients


class Pacer:
    """Spaces request starts at least 1/rate seconds apart (on the event loop's clock)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = max(now, self._next)
        self._next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


class BroadcastRunner:
    """Runs due broadcasts inside a worker; each job is leased, so one runner sends it at a time."""

    def __init__(self, services: Services, name: str, clock: Callable[[], float] = time.time):
        self.services = services
        self.redis = services.redis
        self.settings = services.settings
        self.name = name
        self.clock = clock
        self.broadcasts = Broadcasts(services, clock)
        self._leases = Leases(self.redis)
        self._step = lua_script(self.redis, "broadcast_step")
        self.pacer = Pacer(self.settings.broadcast_rate)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.run_due()
            except RedisError as exc:
                log.warning("broadcast runner: %s", exc)
            except Exception:  # never let one bad job stop broadcasts for good
                log.exception("broadcast runner: unexpected error; carrying on")
            try:
                await asyncio.wait_for(stopping.wait(), self.settings.broadcast_poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def run_due(self) -> int:
        """Every job whose time has come and that no other runner holds; returns how many were run."""
        ran = 0
        for raw in await self.redis.zrangebyscore(keys.BROADCAST_QUEUE, "-inf", self._now_ms(), start=0, num=10):
            job_id = raw.decode()
            if await self._leases.hold(keys.broadcast_lease(job_id), self.name, self.settings.lease_ms):
                await self.run_job(job_id)
                ran += 1
        return ran

    async def _hold_lease(self, job_id: str, lost: asyncio.Event, finished: asyncio.Event) -> None:
        # ends on `finished`, not only on cancellation: a cancel can be lost inside a Redis call (see
        # bot/infra/redis_conn.py), and the job's run waits for this task
        while not finished.is_set():
            try:
                await asyncio.wait_for(finished.wait(), self.settings.lease_ms / 3000)
                return
            except asyncio.TimeoutError:
                pass
            try:
                if not await self._leases.hold(keys.broadcast_lease(job_id), self.name, self.settings.lease_ms):
                    lost.set()
                    return
            except RedisError as exc:
                log.warning("broadcast %s: lease not renewed: %s", job_id, exc)

    async def _step_(self, job_id: str, op: str, *args: Any) -> tuple[str, int]:
        after, _, next_batch = await self._step(keys=[keys.broadcast(job_id)], args=[op, self._now_ms(), *args])
        return after.decode(), int(next_batch)

    async def run_job(self, job_id: str) -> None:
        lost, finished = asyncio.Event(), asyncio.Event()
        keeper = asyncio.create_task(self._hold_lease(job_id, lost, finished))
        try:
            status = await self._run(job_id, lost)
        finally:
            finished.set()
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await self._leases.release(keys.broadcast_lease(job_id), self.name)
        if status not in ("running", "queued", "scheduled"):  # finished, paused or cancelled: off the queue
            await self.redis.zrem(keys.BROADCAST_QUEUE, job_id)
            # remove, then look again: a resume that landed in between must not be left off the queue
            if (await self.redis.hget(keys.broadcast(job_id), "status")) in (b"queued", b"running"):
                await self.redis.zadd(keys.BROADCAST_QUEUE, {job_id: self._now_ms()})

    async def _run(self, job_id: str, lost: asyncio.Event) -> str:
        status, _ = await self._step_(job_id, "start")
        if status != "running":
            return status
        job_key = keys.broadcast(job_id)
        if not await self.redis.hget(job_key, "snapshot"):
            try:
                await self._snapshot(job_id)
            except SegmentError as exc:  # valid when created, not under today's rules (a tier renamed)
                log.error("broadcast %s cannot start: %s", job_id, exc)
                return (await self._step_(job_id, "fail", f"INVALID_SEGMENT: {exc}"[:300]))[0]
        first, count = (int(v) for v in await self.redis.hmget(job_key, ["next_batch", "batches"]))
        if count == 0:
            return (await self._step_(job_id, "advance", 0, 0, 0))[0]
        variants: dict[str, list[dict]] = {}
        in_flight: dict[int, asyncio.Task[int]] = {}
        upcoming = first
        try:
            for i in range(first, count):
                # keep up to `concurrency` batches going; progress still moves strictly in batch order
                while upcoming < count and len(in_flight) < self.settings.broadcast_concurrency \
                        and not lost.is_set() and await self.redis.hget(job_key, "status") == b"running":
                    in_flight[upcoming] = asyncio.create_task(self._batch(job_id, upcoming, variants))
                    upcoming += 1
                if i not in in_flight:  # cancelled, paused or the lease lost: nothing more starts
                    break
                outcome = (await asyncio.gather(in_flight.pop(i), return_exceptions=True))[0]
                if isinstance(outcome, MonthlyLimitReached):
                    log.warning("broadcast %s paused at batch %d: LINE's monthly limit", job_id, i)
                    return (await self._step_(job_id, "pause", "MONTHLY_LIMIT: LINE's monthly message quota is "
                            "used up; resume (POST /api/v1/broadcasts/{id}/resume) once the quota allows"))[0]
                if isinstance(outcome, BatchRefused):  # this batch can never go: count it and carry on
                    log.error("broadcast %s batch %d refused by LINE: %s", job_id, i, outcome)
                    status, _ = await self._step_(job_id, "advance", i, 0, outcome.recipients)
                elif isinstance(outcome, BaseException):
                    log.warning("broadcast %s batch %d: LINE kept failing (%s); trying again later", job_id, i, outcome)
                    await self.redis.hset(job_key, "reason", f"LINE_UNAVAILABLE: retrying after {outcome}"[:300])
                    await self.redis.zadd(keys.BROADCAST_QUEUE, {job_id: self._now_ms() + RETRY_LATER_MS})
                    return "running"
                else:
                    status, _ = await self._step_(job_id, "advance", i, outcome, 0)
        finally:
            # batches started but not counted: a later run sends them again with the same keys (409 if landed)
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)
        return (await self.redis.hget(job_key, "status")).decode()

    async def _batch(self, job_id: str, i: int, variants: dict[str, list[dict]]) -> int:
        """Send batch i: its retry key is written (once) before the request; returns how many it reached."""
        retry = keys.broadcast_retry_keys(job_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(retry, str(i), str(uuid.uuid4()))
            pipe.hget(retry, str(i))
            pipe.lindex(keys.broadcast_batches(job_id), i)
            _, key, raw = await pipe.execute()
        batch = json.loads(raw)
        if batch["v"] not in variants:
            variants[batch["v"]] = json.loads(await self.redis.hget(keys.broadcast_variants(job_id), batch["v"]))
        await self.pacer.wait()
        try:
            await self.services.line.multicast(batch["to"], variants[batch["v"]], key.decode())
        except MonthlyLimitReached:
            raise
        except LineRejected as exc:
            raise BatchRefused(len(batch["to"]), str(exc)) from exc
        return len(batch["to"])

    async def _snapshot(self, job_id: str) -> None:
        """Fix the recipients: batches of ≤ 500 with identical messages, written in one step with the count."""
        job_key = keys.broadcast(job_id)
        messages_raw, segment_raw = await self.redis.hmget(job_key, ["messages", "segment"])
        raw = json.loads(segment_raw)
        segment = segments.parse(raw, self.services.program.rules, self._now_ms())
        messages = json.loads(messages_raw)
        if placeholders_in(messages):
            groups = await self.broadcasts.rendered_groups(messages, await self.broadcasts.recipients(segment, raw))
        else:
            ids = await self.broadcasts.recipient_ids(segment, raw)
            groups = [(messages, ids)] if ids else []
        total = sum(len(uids) for _, uids in groups)
        per_request = MULTICAST_TO_MAX
        batches = [json.dumps({"v": str(v), "to": uids[start:start + per_request]})
                   for v, (_, uids) in enumerate(groups) for start in range(0, len(uids), per_request)]
        async with self.redis.pipeline(transaction=True) as pipe:  # every key in the job's {hash tag}
            pipe.delete(keys.broadcast_batches(job_id), keys.broadcast_variants(job_id))
            for start in range(0, len(batches), 100):
                pipe.rpush(keys.broadcast_batches(job_id), *batches[start:start + 100])
            if groups:
                pipe.hset(keys.broadcast_variants(job_id), mapping={
                    str(v): json.dumps(m, ensure_ascii=False) for v, (m, _) in enumerate(groups)})
            pipe.hset(job_key, mapping={"total": total, "batches": len(batches), "next_batch": 0,
                                        "snapshot": 1})
            await pipe.execute()
        log.info("broadcast %s: %d recipients in %d batches (%d distinct messages)", job_id, total,
                 len(batches), len(groups))
