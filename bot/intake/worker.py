"""The event worker: reads the intake streams, runs the handlers, acknowledges.

Each partition is owned by one worker at a time through a lease in Redis, so one user's events are
handled in order even with many worker processes. A worker that takes over a partition first claims
every entry the group still has pending (a dead owner's), then reads new ones. A handler error leaves
the entry pending to be tried again; after MAX_ATTEMPTS it goes to a dead-letter stream.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from linebot.v3.webhooks import Event, FollowEvent, UnfollowEvent
from redis.exceptions import RedisError, ResponseError

from bot.chat.context import SENT_MARKER_TTL, Ctx
from bot.chat.router import Router
from bot.infra import keys
from bot.infra.leases import Leases
from bot.infra.metrics import Metrics
from bot.intake.clock import ClockWork
from bot.services import Services
from rewards.scripts import register

log = logging.getLogger(__name__)

_LUA = Path(__file__).resolve().parent / "lua"
BATCH = 100
MAX_ATTEMPTS = 5
RETRY_IDLE_MS = 2_000  # a failed entry is tried again once it has been pending this long
# Events handled at once by one process, over all its partitions (up to 8 × BATCH without it). Past what
# keeps the core busy, more only queues callbacks ahead of the webhook's, which in `serve` shares this loop,
# so its ack waits behind them. Most of an event's time is spent waiting on LINE (~100 ms a reply in
# production), so 64 still allows ~600 events/s per process (docs/benchmarks.md).
IN_FLIGHT = 64


def _sighting(event: Event) -> str:
    if isinstance(event, FollowEvent):
        return "unblock" if event.follow.is_unblocked else "follow"
    if isinstance(event, UnfollowEvent):
        return "unfollow"
    return str(event.type)


class Worker:
    def __init__(self, services: Services, router: Router, metrics: Metrics, name: str | None = None):
        self.services = services
        self.redis = services.redis
        self.router = router
        self.metrics = metrics
        self.settings = services.settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._leases = Leases(self.redis)
        self._finish = register(self.redis, _LUA / "finish.lua")
        self.clock = ClockWork(services, self._leases, self.name)
        self._stopping = asyncio.Event()
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        self._held: set[int] = set()  # partitions this worker holds now
        self._live_workers = 1
        self.handled = 0  # events finished by this worker (tests and logs)

    # ---- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        log.info("worker %s starting on %d partitions", self.name, self.settings.stream_partitions)
        tasks = [asyncio.create_task(self.clock.run(self._pause, self._stopping))]  # first: its first tick runs at start
        try:
            await self._beat()  # count the others before taking partitions
            tasks += [asyncio.create_task(self._partition(p)) for p in range(self.settings.stream_partitions)]
            tasks.append(asyncio.create_task(self._heartbeat_loop()))
            await asyncio.gather(*tasks)
        finally:
            # cancelled or stopped: the loops also end on the flag, as a cancel can be lost inside a Redis
            # call (bot/infra/redis_conn.py) and this gather would then wait for ever
            self._stopping.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self.redis.zrem(keys.WORKERS, self.name)
            except RedisError:
                pass

    async def stop(self) -> None:
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _heartbeat_loop(self) -> None:
        """Say we are alive and count who else is, so that each worker holds its fair share of partitions.

        Without it the first worker to start keeps every partition (it renews its leases for ever) and a
        second process has nothing to do (docs/benchmarks.md, the scale run)."""
        while not self._stopping.is_set():
            await self._pause(self.settings.lease_ms / 3000)
            await self._beat()

    async def _beat(self) -> None:
        ttl = self.settings.lease_ms  # as long as a lease: a worker silent that long is gone
        try:
            now = int(time.time() * 1000)
            await self.redis.zadd(keys.WORKERS, {self.name: now})
            await self.redis.zremrangebyscore(keys.WORKERS, "-inf", now - ttl)
            self._live_workers = max(1, int(await self.redis.zcard(keys.WORKERS)))
        except RedisError as exc:
            log.warning("worker heartbeat failed: %s", exc)

    def _fair_share(self) -> int:
        return -(-self.settings.stream_partitions // self._live_workers)

    # ---- one partition -----------------------------------------------------------------
    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _partition(self, p: int) -> None:
        stream, lease = keys.stream(p), keys.lease(p)
        holding = False
        last_reclaim = 0.0
        while not self._stopping.is_set():
            try:
                share = self._fair_share()
                if holding and len(self._held) > share and p == max(self._held):
                    # more than our share: give the highest one back between batches (the next owner
                    # reclaims anything still pending, so nothing is lost and order is kept)
                    await self._leases.release(lease, self.name)
                    holding = False
                    self._held.discard(p)
                    await self._pause(self.settings.lease_ms / 1000)
                    continue
                if not holding and len(self._held) >= share:
                    await self._pause(self.settings.lease_ms / 3000)
                    continue
                if not await self._leases.hold(lease, self.name, self.settings.lease_ms):
                    holding = False
                    self._held.discard(p)
                    await self._pause(self.settings.lease_ms / 3000)
                    continue
                self._held.add(p)
                if not holding:  # just took the partition: whatever is pending is ours to finish
                    await self._ensure_group(stream)
                    holding, last_reclaim = True, 0.0
                entries: list[Any] = []
                if time.monotonic() - last_reclaim > RETRY_IDLE_MS / 1000:
                    idle = 0 if last_reclaim == 0.0 else RETRY_IDLE_MS
                    _, entries, *_ = await self.redis.xautoclaim(stream, keys.GROUP, self.name, idle,
                                                                 start_id="0-0", count=BATCH)
                    last_reclaim = time.monotonic()
                if not entries:
                    block = max(100, min(1000, self.settings.lease_ms // 3))
                    got = await self.redis.xreadgroup(keys.GROUP, self.name, {stream: ">"}, count=BATCH, block=block)
                    entries = got[0][1] if got else []
                if entries:
                    await self._batch(p, entries)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("partition %d: redis error %s; retrying", p, exc)
                holding = False
                self._held.discard(p)
                await self._pause(1.0)
            except Exception:  # never let one bad batch stop a partition for good
                log.exception("partition %d: unexpected error; carrying on", p)
                self.metrics.handled.labels("worker_error").inc()
                await self._pause(1.0)
        try:
            await self._leases.release(lease, self.name)
        except RedisError:
            pass

    async def _batch(self, p: int, entries: list[Any]) -> None:
        """Users side by side, each user's events one after another (by the time they happened)."""
        per_user: dict[str, list[tuple[bytes, dict, int]]] = defaultdict(list)
        for entry_id, fields in entries:
            if not fields:  # deleted meanwhile (finished by an earlier owner)
                await self.redis.xack(keys.stream(p), keys.GROUP, entry_id)
                continue
            raw = json.loads(fields[b"e"])
            per_user[raw["source"]["userId"]].append((entry_id, raw, int(fields[b"r"])))
        await asyncio.gather(*(self._user(p, items) for items in per_user.values()))

    async def _user(self, p: int, items: list[tuple[bytes, dict, int]]) -> None:
        for entry_id, raw, received in sorted(items, key=lambda item: item[1].get("timestamp", 0)):
            async with self._in_flight:
                done = await self._one(p, entry_id, raw, received)
            if not done:
                break  # keep this user's later events pending, so they stay in order

    async def _one(self, p: int, entry_id: bytes, raw: dict, received_at_ms: int) -> bool:
        event_id = raw["webhookEventId"]
        stream = keys.stream(p)
        done_marks: list[str] = []
        try:
            outcome = await self.handle(raw, received_at_ms, done_marks, partition=p)
        except Exception:
            log.exception("handler failed for event %s (user %s)", event_id, raw["source"].get("userId"))
            await self._mark_done(done_marks)  # what went out must not go out again on the next try
            self.metrics.handled.labels("error").inc()
            attempts = await self.redis.hincrby(keys.attempts(p), event_id, 1)
            if attempts < MAX_ATTEMPTS:
                return False
            log.error("event %s failed %d times: moved to the dead-letter stream", event_id, attempts)
            await self.redis.xadd(keys.dead(p), {"e": json.dumps(raw), "r": received_at_ms})
            outcome = "dead"
        await self._finish_with_marks(stream, entry_id, done_marks)
        self.metrics.handled.labels(outcome).inc()
        self.handled += 1
        return True

    async def _mark_done(self, done_marks: list[str]) -> None:
        for marker in done_marks:
            await self.redis.set(marker, "done", ex=SENT_MARKER_TTL)

    async def _finish_with_marks(self, stream: str, entry_id: bytes, done_marks: list[str]) -> None:
        """The event's sent markers "done" and its finish, atomically in one script call: the markers live in
        the partition's slot (bot/infra/keys.py `sent`), so finish.lua takes them as KEYS beside the stream."""
        await self._finish(keys=[stream, *done_marks], args=[keys.GROUP, entry_id, SENT_MARKER_TTL])

    async def _standby(self, raw: dict) -> str:
        """Another channel holds the chat: say nothing, but keep who follows and blocks (and signup points).

        Read from the raw event: LINE sends a standby follow without a replyToken, which the SDK's model
        requires, so the SDK would refuse it."""
        kind, user_id, at = raw.get("type"), raw["source"]["userId"], raw["timestamp"]
        if kind == "follow":
            unblocked = bool((raw.get("follow") or {}).get("isUnblocked"))
            await self.services.program.see(user_id, "unblock" if unblocked else "follow", at)
            if not unblocked:
                await self.services.program.welcome_points(user_id, at)
        elif kind == "unfollow":
            await self.services.program.see(user_id, "unfollow", at)
        return "standby"

    async def handle(self, raw: dict, received_at_ms: int, done_marks: list[str] | None = None,
                     partition: int | None = None) -> str:
        """One event through sighting, routing and its handler; returns what happened."""
        if raw.get("mode") == "standby":
            return await self._standby(raw)
        try:
            event = Event.from_dict(raw)
        except (ValueError, TypeError) as exc:
            # the SDK's WebhookParser would silently turn this into an UnknownEvent: say it loudly
            log.warning("event %s does not match LINE's schema, skipped: %s", raw.get("webhookEventId"), exc)
            return "unparseable"
        user_id = raw["source"]["userId"]
        ctx = Ctx(event=event, user_id=user_id, event_id=raw["webhookEventId"], received_at_ms=received_at_ms,
                  services=self.services, done_marks=done_marks, partition=partition)
        program = self.services.program
        ctx.member_is_new, language, step = await program.sighting_and_step(
            user_id, _sighting(event), event.timestamp, step_key=keys.conversation_step(user_id))
        ctx.step_read(step)  # the pending conversation step, read with the sighting for the routing filters
        ctx.lang = self.services.texts.lang_for(language)
        handler = await self.router.dispatch(ctx)
        if ctx.tampered:  # counted once per event, however many routes looked at the data
            self.metrics.postbacks_refused.inc()
        return "handled" if handler else "unrouted"
