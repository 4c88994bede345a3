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


def renew_interval_ms(lease_ms: int) -> int:
    """How often a worker renews its leases and beats: three times a lease, so one late renewal is harmless."""
    return lease_ms // 3


def read_block_ms(lease_ms: int) -> int:
    """How long a partition's XREADGROUP blocks: under the renewal interval, so a lost lease or a stop is
    noticed between two reads (the renewals themselves run apart, in the keep-alive)."""
    return max(100, min(1000, lease_ms // 4))


def takeover_bound_ms(lease_ms: int) -> int:
    """The longest a SIGKILLed worker's partitions wait for a survivor: its leases lapse at most a lease
    after its last renewal, which came just before its last heartbeat; the survivors count it gone at their
    next beat, at most a renewal interval after that, and the partitions waiting for a share try at once."""
    return lease_ms + renew_interval_ms(lease_ms)


def _sighting(event: Event) -> str:
    if isinstance(event, FollowEvent):
        return "unblock" if event.follow.is_unblocked else "follow"
    if isinstance(event, UnfollowEvent):
        return "unfollow"
    return str(event.type)


def _random_name(base: str | None = None) -> str:
    """A name no other process goes by: `base` (or the host and pid) and a random suffix."""
    return f"{base or f'{socket.gethostname()}-{os.getpid()}'}-{uuid.uuid4().hex[:6]}"


def _stable_name(platform_name: str | None) -> str | None:
    """The platform's name for this process (DYNO) with the host: the same after a restart in place, so the
    process takes its own partitions back at once. With the host in it, two processes that share a name
    share a host, where whether the other one still runs can be checked (`_gone`)."""
    return f"{socket.gethostname()}-{platform_name}" if platform_name else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    try:  # killed but not yet reaped by its parent (a zombie) is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


_INSTANCES_HERE: set[str] = set()  # the instance ids of the workers running in this process


def _gone(instance: str) -> bool:
    """Whether the process instance that holds a name on this host ("pid:token") has stopped for good."""
    pid, _, _token = instance.partition(":")
    if instance in _INSTANCES_HERE:
        return False
    if not pid.isdigit():
        return False
    # our own pid but none of our workers: a restarted container that was given its old pid again
    return int(pid) == os.getpid() or not _running(int(pid))


class Worker:
    def __init__(self, services: Services, router: Router, metrics: Metrics, name: str | None = None):
        self.services = services
        self.redis = services.redis
        self.router = router
        self.metrics = metrics
        self.settings = services.settings
        self.name = name or _stable_name(self.settings.worker_name) or _random_name()
        # this process instance, held in the name's lease: two live instances never go by the same name
        self.instance = f"{os.getpid()}:{uuid.uuid4().hex}"
        self._named = False  # the name's lease taken (claim_name)
        self._leases = Leases(self.redis)
        self._finish = register(self.redis, _LUA / "finish.lua")
        self.clock = ClockWork(services, self._leases, self.name)
        self._stopping = asyncio.Event()
        self._workers_changed = asyncio.Event()  # set (and replaced) when the count of live workers changes
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        self._held: set[int] = set()  # partitions this worker holds now (the keep-alive drops a lost one)
        self._live_workers = 1
        self.handled = 0  # events finished by this worker (tests and logs)

    @property
    def _renew_seconds(self) -> float:
        return renew_interval_ms(self.settings.lease_ms) / 1000

    # ---- lifecycle ---------------------------------------------------------------------
    async def claim_name(self) -> None:
        """Hold our name's lease before taking anything under the name.

        Free: ours. Held by an instance on this host that no longer runs (our predecessor, SIGKILLed and
        restarted): ours at once, with the partitions and pending entries it held under the name. Held by a
        live instance (two processes given one name): this one goes by the name plus a random suffix."""
        if self._named:
            return
        key, ttl = keys.worker_name(self.name), self.settings.lease_ms
        try:
            if not await self._leases.hold(key, self.instance, ttl):
                holder = (await self.redis.get(key) or b"").decode()
                if holder and _gone(holder) and await self._leases.replace(key, holder, self.instance, ttl):
                    log.info("worker %s: took its name back from instance %s, which is gone", self.name, holder)
                else:
                    taken = self.name
                    self._rename(_random_name(taken))
                    log.warning("worker name %s is held by a running process (instance %s): this one runs as %s",
                                taken, holder, self.name)
                    await self._leases.hold(keys.worker_name(self.name), self.instance, ttl)
        except RedisError as exc:  # Redis down at start: the keep-alive takes the name once it answers
            log.warning("worker %s: could not take its name yet: %s", self.name, exc)
        self._named = True
        _INSTANCES_HERE.add(self.instance)

    def _rename(self, name: str) -> None:
        self.name = self.clock.name = name
        self.clock.holding = False

    async def run(self) -> None:
        await self.claim_name()
        log.info("worker %s starting on %d partitions", self.name, self.settings.stream_partitions)
        tasks = [asyncio.create_task(self.clock.run(self._pause, self._stopping))]  # first: its first tick runs at start
        try:
            await self._beat()  # count the others before taking partitions
            tasks += [asyncio.create_task(self._partition(p)) for p in range(self.settings.stream_partitions)]
            tasks.append(asyncio.create_task(self._keepalive_loop()))
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
                await self._leases.release(keys.worker_name(self.name), self.instance)
            except RedisError:
                pass
            _INSTANCES_HERE.discard(self.instance)

    async def stop(self) -> None:
        self._stopping.set()
        self._workers_changed.set()  # wakes the partitions waiting for a share

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _until_workers_change(self, seconds: float) -> None:
        """Wait `seconds`, or less: until the count of live workers changes (one gone leaves its partitions
        free, so they are taken at the next heartbeat rather than a wait later) or we stop."""
        try:
            await asyncio.wait_for(self._workers_changed.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _keepalive_loop(self) -> None:
        """Every third of a lease: renew what we hold, then say we are alive and count who else is.

        Renewing here, not in the partition loops, keeps a live worker's leases from lapsing however long a
        batch takes (one user's events are handled one after another, each waiting on LINE). Renewals come
        before the heartbeat, so when the others see this worker gone its leases have lapsed too, and the
        survivors take its partitions at that heartbeat. The counting shares the partitions fairly: without
        it the first worker to start keeps every partition and a second process has nothing to do
        (docs/benchmarks.md, the scale run). Redis load: one call per lease held (at most the partitions, the
        clock and the name) and three for the heartbeat, every lease/3 (1 s by default)."""
        while not self._stopping.is_set():
            await self._pause(self._renew_seconds)
            if not self._stopping.is_set():
                await self._renew_all()
                await self._beat()

    async def _renew_all(self) -> None:
        ttl = self.settings.lease_ms
        try:
            if not await self._leases.hold(keys.worker_name(self.name), self.instance, ttl):
                # our name's lease lapsed (this process stalled for a lease) and another instance took it:
                # what we held under the name is now its; we go on under a new name
                taken = self.name
                self._held.clear()
                self._rename(_random_name(taken))
                await self._leases.hold(keys.worker_name(self.name), self.instance, ttl)
                log.error("worker name %s was taken by another instance while this one stalled: now %s",
                          taken, self.name)
                return
            held = sorted(self._held)
            renewed = await asyncio.gather(*(self._leases.renew(keys.lease(p), self.name, ttl) for p in held))
            for p, kept in zip(held, renewed, strict=True):
                if not kept:  # lapsed (we stalled past a lease): its partition loop stops reading it
                    log.warning("worker %s lost partition %d's lease", self.name, p)
                    self._held.discard(p)
            if self.clock.holding:
                self.clock.holding = await self._leases.renew(keys.CLOCK_LEASE, self.name, ttl)
        except RedisError as exc:
            log.warning("worker %s: renewing its leases failed: %s", self.name, exc)

    async def _beat(self) -> None:
        ttl = self.settings.lease_ms  # as long as a lease: a worker silent that long is gone
        try:
            now = int(time.time() * 1000)
            await self.redis.zadd(keys.WORKERS, {self.name: now})
            await self.redis.zremrangebyscore(keys.WORKERS, "-inf", now - ttl)
            live = max(1, int(await self.redis.zcard(keys.WORKERS)))
        except RedisError as exc:
            log.warning("worker heartbeat failed: %s", exc)
            return
        if live != self._live_workers:
            self._live_workers = live
            changed, self._workers_changed = self._workers_changed, asyncio.Event()
            changed.set()  # wakes every partition waiting in _until_workers_change

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
        """Take the partition when it is free and within our share, then read and handle it while we hold
        it. The keep-alive renews the lease and drops `p` from `_held` if it was lost."""
        stream, lease = keys.stream(p), keys.lease(p)
        holding = False
        last_reclaim = 0.0
        while not self._stopping.is_set():
            try:
                holding = holding and p in self._held
                share = self._fair_share()
                if holding and len(self._held) > share and p == max(self._held):
                    # more than our share: give the highest one back between batches (the next owner
                    # reclaims anything still pending, so nothing is lost and order is kept)
                    self._held.discard(p)
                    await self._leases.release(lease, self.name)
                    holding = False
                    await self._pause(self.settings.lease_ms / 1000)
                    continue
                if not holding:
                    if len(self._held) >= share or not await self._leases.hold(lease, self.name,
                                                                              self.settings.lease_ms):
                        await self._until_workers_change(self._renew_seconds)
                        continue
                    # just took the partition: whatever is pending is ours to finish (a restarted process
                    # with our name takes back its own lease here at once, and its pending entries)
                    self._held.add(p)
                    await self._ensure_group(stream)
                    holding, last_reclaim = True, 0.0
                entries: list[Any] = []
                if time.monotonic() - last_reclaim > RETRY_IDLE_MS / 1000:
                    idle = 0 if last_reclaim == 0.0 else RETRY_IDLE_MS
                    _, entries, *_ = await self.redis.xautoclaim(stream, keys.GROUP, self.name, idle,
                                                                 start_id="0-0", count=BATCH)
                    last_reclaim = time.monotonic()
                if not entries:
                    got = await self.redis.xreadgroup(keys.GROUP, self.name, {stream: ">"}, count=BATCH,
                                                      block=read_block_ms(self.settings.lease_ms))
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
