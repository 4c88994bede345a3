"""The event worker: reads the intake streams, runs the handlers, acknowledges.

Each partition is owned by one worker at a time through a lease in Redis. Inside it, every user has a lane:
their events are handled one after another, in order, while other users' lanes run side by side, and the
partition keeps being read meanwhile. So one user's backlog (a flood, a slow answer) holds up nobody else.
A worker that takes over a partition first claims every entry the group still has pending (a dead owner's).
A handler error keeps the event at the head of its user's lane and it is tried again a little later; after
MAX_ATTEMPTS it goes to a dead-letter stream. Finished entries leave the stream with their sent markers in
one finish.lua call, shared by the entries that finish together.
"""
from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linebot.v3.webhooks import Event, FollowEvent, UnfollowEvent
from redis.exceptions import RedisError, ResponseError

from bot.chat.context import SENT_MARKER_TTL, Ctx
from bot.chat.router import Router
from bot.infra import keys
from bot.infra.leases import Leases
from bot.infra.metrics import Metrics
from bot.intake import events
from bot.intake.clock import ClockWork
from bot.services import Services
from bot.shopify import topics as shopify_topics
from rewards.scripts import register

log = logging.getLogger(__name__)

_LUA = Path(__file__).resolve().parent / "lua"
BATCH = 100  # entries read from a partition at once
MAX_ATTEMPTS = 5
RETRY_IDLE_MS = 2_000  # a failed event is tried again after this long (its user's later events wait)
# Entries read and not yet finished, per partition. Past it the partition is not read until lanes drain,
# which bounds memory; a single flooding user fills it only after this many of their own events.
MAX_IN_HAND = 1_000
RECLAIM_IDLE_MS = 60_000  # pending this long and not in our hands: lost somewhere, claim it back
RECLAIM_EVERY_SECONDS = 10
FINISH_BATCH = 200  # entries finished in one finish.lua call at most
# Events handled at once by one process, over all its lanes. Past what keeps the core busy, more only
# queues callbacks ahead of the webhook's, which in `serve` shares this loop, so its ack waits behind
# them. Most of an event's time is spent waiting on LINE (~100 ms a reply in production), so 64 still
# allows ~600 events/s per process (docs/benchmarks.md).
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


@dataclass
class _Entry:
    entry_id: bytes
    raw: dict
    received_at_ms: int
    first_run: bool  # read for the first time (XREADGROUP ">"): no earlier run of it can exist

    @property
    def timestamp(self) -> int:
        return int(self.raw.get("timestamp", 0))


@dataclass
class _Lane:
    """One user's events in a partition, handled one at a time, by LINE's timestamp."""

    waiting: list[_Entry] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    noticed: bool = False  # told the wait notice in the current flood


@dataclass
class _Partition:
    p: int
    lanes: dict[str, _Lane] = field(default_factory=dict)
    in_hand: set[bytes] = field(default_factory=set)  # read, not yet finished or dropped
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set while in_hand is under MAX_IN_HAND
    # each user's recent event timestamps (at most [chat_pace] max_events + 1), kept across their lanes
    recent: dict[str, deque[int]] = field(default_factory=dict)
    draining: bool = False
    claim_from: str | None = None  # while claiming what is pending: where the next page starts
    claim_idle_ms: int = 0


class _Finisher:
    """finish.lua calls of one worker, shared per partition: while one is in flight, the entries that
    finish meanwhile wait and go together in the next (a group commit, as the intake does)."""

    def __init__(self, redis: Any):
        self._script = register(redis, _LUA / "finish.lua")
        self._busy: set[int] = set()
        self._waiting: dict[int, list[tuple[bytes, list[str], asyncio.Future[None]]]] = {}

    async def finish(self, p: int, entry_id: bytes, marks: list[str]) -> None:
        if p in self._busy:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(p, []).append((entry_id, marks, done))
            await done
            return
        self._busy.add(p)
        batch: list[tuple[bytes, list[str], asyncio.Future[None]]] = []
        try:
            await self._call(p, [(entry_id, marks)])
            while self._waiting.get(p):  # those that finished meanwhile, together
                batch, self._waiting[p] = self._waiting[p][:FINISH_BATCH], self._waiting[p][FINISH_BATCH:]
                try:
                    await self._call(p, [(entry_id, marks) for entry_id, marks, _ in batch])
                    outcome: Exception | None = None
                except Exception as exc:  # each of them is tried again by its lane
                    outcome = exc
                for _, _, done in batch:
                    if outcome is None:
                        done.set_result(None)
                    else:
                        done.set_exception(outcome)
                batch = []
        finally:
            self._busy.discard(p)
            for _, _, done in [*batch, *self._waiting.pop(p, [])]:  # failed or cancelled: nobody waits for ever
                if not done.done():
                    done.set_exception(RedisError("the finish stopped"))

    async def _call(self, p: int, entries: list[tuple[bytes, list[str]]]) -> None:
        marks = [mark for _, entry_marks in entries for mark in entry_marks]
        await self._script(keys=[keys.stream(p), *marks],
                           args=[keys.GROUP, SENT_MARKER_TTL, *(entry_id for entry_id, _ in entries)])


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
        self._finisher = _Finisher(self.redis)
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
        """Take the partition when it is free and within our share, then feed its entries to the users' lanes
        while we hold it. The keep-alive renews the lease and drops `p` from `_held` if it was lost."""
        stream, lease = keys.stream(p), keys.lease(p)
        part: _Partition | None = None  # while we hold the partition
        last_reclaim = 0.0
        while not self._stopping.is_set():
            try:
                if part and p not in self._held:  # lost (the keep-alive could not renew it): its next owner
                    await self._let_go(part)      # finishes what is pending
                    part = None
                share = self._fair_share()
                if part and len(self._held) > share and p == max(self._held):
                    # more than our share: give the highest one back (the next owner claims what is still
                    # pending, so nothing is lost and each user's order is kept). The lease is renewed
                    # until the events under way have finished.
                    await self._let_go(part)
                    part = None
                    await self._leases.release(lease, self.name)
                    await self._pause(self.settings.lease_ms / 1000)
                    continue
                if part is None:
                    if len(self._held) >= share or not await self._leases.hold(lease, self.name,
                                                                              self.settings.lease_ms):
                        await self._until_workers_change(self._renew_seconds)
                        continue
                    # just took the partition: whatever is pending is ours to finish, before anything new (a
                    # restarted process with our name takes back its own lease here at once, and its entries)
                    self._held.add(p)
                    await self._ensure_group(stream)
                    part = _Partition(p)
                    part.room.set()
                    part.claim_from, part.claim_idle_ms = "0-0", 0
                    last_reclaim = time.monotonic()
                elif part.claim_from is None and time.monotonic() - last_reclaim > RECLAIM_EVERY_SECONDS:
                    part.claim_from, part.claim_idle_ms = "0-0", RECLAIM_IDLE_MS  # anything lost on the way
                    last_reclaim = time.monotonic()
                    self._forget_calm_users(part)
                block_ms = read_block_ms(self.settings.lease_ms)
                if len(part.in_hand) >= MAX_IN_HAND:  # full: wait for the lanes to make room
                    part.room.clear()
                    try:
                        await asyncio.wait_for(part.room.wait(), block_ms / 1000)
                    except asyncio.TimeoutError:
                        pass
                    continue
                if part.claim_from is not None:
                    await self._claim(part)
                    continue
                got = await self.redis.xreadgroup(keys.GROUP, self.name, {stream: ">"},
                                                  count=min(BATCH, MAX_IN_HAND - len(part.in_hand)), block=block_ms)
                if got:
                    await self._take(part, got[0][1], first_run=True)
            except asyncio.CancelledError:
                if part:
                    for lane in part.lanes.values():
                        if lane.task:
                            lane.task.cancel()
                raise
            except RedisError as exc:
                log.warning("partition %d: redis error %s; retrying", p, exc)
                if part is None:  # failed while taking it: take it afresh next time (the lease is ours to renew)
                    self._held.discard(p)
                await self._pause(1.0)
            except Exception:  # never let one bad read stop a partition for good
                log.exception("partition %d: unexpected error; carrying on", p)
                self.metrics.handled.labels("worker_error").inc()
                if part is None:
                    self._held.discard(p)
                await self._pause(1.0)
        if part:
            await self._let_go(part)
        try:
            await self._leases.release(lease, self.name)
        except RedisError:
            pass

    async def _claim(self, part: _Partition) -> None:
        """One page of the entries pending in the group (idle at least claim_idle_ms) that we do not hold yet."""
        assert part.claim_from is not None
        start, entries, *_ = await self.redis.xautoclaim(keys.stream(part.p), keys.GROUP, self.name,
                                                         part.claim_idle_ms, start_id=part.claim_from, count=BATCH)
        start = start.decode() if isinstance(start, bytes) else str(start)
        part.claim_from = None if start == "0-0" else start
        await self._take(part, [(entry_id, fields) for entry_id, fields in entries if entry_id not in part.in_hand],
                         first_run=False)

    async def _take(self, part: _Partition, entries: list[Any], first_run: bool) -> None:
        """Put entries in their users' lanes, in LINE's time order, and start the lanes that were idle."""
        for entry_id, fields in entries:
            if not fields:  # deleted meanwhile (finished by an earlier owner)
                await self.redis.xack(keys.stream(part.p), keys.GROUP, entry_id)
                continue
            raw = json.loads(fields[b"e"])
            user_id = raw["source"]["userId"]
            entry = _Entry(entry_id, raw, int(fields[b"r"]), first_run)
            part.in_hand.add(entry_id)
            lane = part.lanes.get(user_id)
            if lane is None:
                lane = part.lanes[user_id] = _Lane()
            bisect.insort(lane.waiting, entry, key=lambda e: e.timestamp)
            if lane.task is None:
                lane.task = asyncio.create_task(self._run_lane(part, user_id, lane))

    async def _run_lane(self, part: _Partition, user_id: str, lane: _Lane) -> None:
        """One user's events, one at a time; a failed one is tried again here, the later ones waiting."""
        try:
            while lane.waiting and not part.draining:
                entry = lane.waiting.pop(0)
                pace = self._pace(part, user_id, lane, entry)
                while True:
                    async with self._in_flight:
                        done = await self._one(part.p, entry, pace)
                    if done or part.draining or self._stopping.is_set():
                        break
                    entry.first_run = False  # the next try is a re-run: it reads the sent markers
                    await self._pause(RETRY_IDLE_MS / 1000)
                if not done:
                    break  # left pending, with the user's later events: the partition's next owner has them
                part.in_hand.discard(entry.entry_id)
                if len(part.in_hand) < MAX_IN_HAND:
                    part.room.set()
        finally:
            lane.task = None
            if not lane.waiting or part.draining:
                part.lanes.pop(user_id, None)

    def _pace(self, part: _Partition, user_id: str, lane: _Lane, entry: _Entry) -> str:
        """The user's pace for this event (see Ctx.pace), from their recent events' LINE timestamps."""
        rules = self.services.program.rules
        recent = part.recent.get(user_id)
        if recent is None or recent.maxlen != rules.pace_max_events + 1:
            recent = part.recent[user_id] = deque(recent or (), maxlen=rules.pace_max_events + 1)
        recent.append(entry.timestamp)
        if len(recent) < rules.pace_max_events + 1 or entry.timestamp - recent[0] >= rules.pace_per_seconds * 1000:
            lane.noticed = False
            return "normal"
        if not lane.noticed:
            lane.noticed = True
            return "notice"
        return "quiet" if lane.waiting else "latest"

    def _forget_calm_users(self, part: _Partition) -> None:
        """Drop the recent timestamps of users with no event within the pace window (bounds the memory)."""
        window_ms = self.services.program.rules.pace_per_seconds * 1000
        now_ms = time.time() * 1000
        for user_id in [u for u, recent in part.recent.items() if now_ms - recent[-1] > window_ms]:
            if user_id not in part.lanes:
                del part.recent[user_id]

    async def _let_go(self, part: _Partition) -> None:
        """Stop taking events from the partition: entries not yet begun stay pending for its next owner
        (which claims them in order), the ones running finish first."""
        part.draining = True
        running = [lane.task for lane in part.lanes.values() if lane.task]
        for lane in part.lanes.values():
            lane.waiting.clear()
        await asyncio.gather(*running, return_exceptions=True)
        part.lanes.clear()
        part.in_hand.clear()
        self._held.discard(part.p)

    async def _one(self, p: int, entry: _Entry, pace: str = "normal") -> bool:
        raw = entry.raw
        event_id = raw["webhookEventId"]
        done_marks: list[str] = []
        try:
            outcome = await self.handle(raw, entry.received_at_ms, done_marks, partition=p,
                                        first_run=entry.first_run, pace=pace)
        except Exception:
            log.exception("handler failed for event %s (user %s)", event_id, raw["source"].get("userId"))
            await self._mark_done(done_marks)  # what went out must not go out again on the next try
            self.metrics.handled.labels("error").inc()
            attempts = await self.redis.hincrby(keys.attempts(p), event_id, 1)
            if attempts < MAX_ATTEMPTS:
                return False
            log.error("event %s failed %d times: moved to the dead-letter stream", event_id, attempts)
            await self.redis.xadd(keys.dead(p), {"e": json.dumps(raw), "r": entry.received_at_ms})
            outcome = "dead"
        # the sent markers "done" and the ack, atomically in one finish.lua call (the markers live in the
        # partition's slot, bot/infra/keys.py `sent`), shared with the entries finishing at the same time
        await self._finisher.finish(p, entry.entry_id, done_marks)
        self.metrics.handled.labels(outcome).inc()
        self.handled += 1
        return True

    async def _mark_done(self, done_marks: list[str]) -> None:
        for marker in done_marks:
            await self.redis.set(marker, "done", ex=SENT_MARKER_TTL)

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
                     partition: int | None = None, first_run: bool = False, pace: str = "normal") -> str:
        """One event through sighting, routing and its handler; returns what happened."""
        if raw.get("type") == shopify_topics.KIND:  # a Shopify webhook, queued by bot/shopify/webhook.py
            return await shopify_topics.handle(self.services, raw)
        if raw.get("mode") == "standby":
            return await self._standby(raw)
        try:
            event = events.parse(raw)
        except (ValueError, TypeError) as exc:
            # the SDK's WebhookParser would silently turn this into an UnknownEvent: say it loudly
            log.warning("event %s does not match LINE's schema, skipped: %s", raw.get("webhookEventId"), exc)
            return "unparseable"
        user_id = raw["source"]["userId"]
        ctx = Ctx(event=event, user_id=user_id, event_id=raw["webhookEventId"], received_at_ms=received_at_ms,
                  services=self.services, done_marks=done_marks, partition=partition, first_run=first_run,
                  pace=pace)
        program = self.services.program
        ctx.member_is_new, language, step = await program.sighting_and_step(
            user_id, _sighting(event), event.timestamp, step_key=keys.conversation_step(user_id))
        ctx.step_read(step)  # the pending conversation step, read with the sighting for the routing filters
        ctx.lang = self.services.texts.lang_for(language)
        try:
            handler = await self.router.dispatch(ctx)
        finally:
            ctx.calm_dots()
        if ctx.held:
            self.metrics.answers_held.inc(ctx.held)
        if ctx.tampered:  # counted once per event, however many routes looked at the data
            self.metrics.postbacks_refused.inc()
        return "handled" if handler else "unrouted"
