"""Durable intake: webhook events go into Redis Streams, partitioned by user so each user's events stay in order."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from bot.infra import keys
from bot.infra.redis_conn import unbatched
from rewards.scripts import register

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 7 * 86_400  # longer than LINE's redelivery window
HANDLED_TYPES = frozenset({"message", "follow", "unfollow", "postback", "accountLink"})
# LINE's user ids; anything else would be queued and then used in Redis keys: "" or "}" would even put one
# member's keys in different cluster slots (their hash tag {U…} would be empty or broken)
USER_ID = re.compile(r"U[0-9a-f]{32}")
BAD_USER_ID = "bad_user_id"
_LUA = Path(__file__).resolve().parent / "lua"
# events in one intake.lua call at most: Redis runs a script alone, so one call stays around a millisecond
MAX_BATCH = 500


def partition_of(user_id: str, partitions: int) -> int:
    return zlib.crc32(user_id.encode()) % partitions


def classify(event: Any) -> tuple[str | None, str]:
    """(user id, "") for an event we queue; (None, why) for one we skip."""
    if not isinstance(event, dict) or not isinstance(event.get("webhookEventId"), str):
        return None, "malformed"
    if not isinstance(event.get("timestamp"), int) or isinstance(event.get("timestamp"), bool):
        return None, "malformed"  # the worker orders a user's events by it
    source = event.get("source")
    if not isinstance(source, dict) or source.get("type") != "user" or not isinstance(source.get("userId"), str):
        return None, "not_a_user_chat"  # groups and rooms: this bot talks 1:1 only
    if not USER_ID.fullmatch(source["userId"]):
        return None, BAD_USER_ID
    if not isinstance(event.get("type"), str) or event["type"] not in HANDLED_TYPES:  # a list would not hash
        return None, "unhandled_type"
    return source["userId"], ""


@dataclass
class _Waiting:
    """One webhook's events for one partition, waiting for the partition's next intake.lua call."""

    items: list[tuple[str, str]]  # (webhookEventId, the event as JSON)
    received_at_ms: int
    queued: asyncio.Future[str]  # "1" queued / "0" duplicate, per item


class Intake:
    """Webhooks that arrive together share one intake.lua call per partition (a group commit).

    A webhook whose partition has no call in flight makes the call itself, at once, as it always did. While
    a partition's call is in flight, the events that arrive for it wait and then go together in the next
    call. So a lone webhook costs what it did, and a burst one call per partition per round trip instead
    of one per request: that call was about half of a webhook's CPU in `serve` (~520 µs a request at 200
    in flight, ~300 µs coalesced; unchanged for requests one at a time), and a burst no longer needs a
    Redis connection per request in flight. Each webhook still answers only once its own events are
    stored, and a failed call fails each webhook in it (503)."""

    def __init__(self, redis: Any, partitions: int):
        self.redis = redis
        self.partitions = partitions
        # not auto-pipelined: the ack would wait a turn of the loop behind the worker's callbacks, and the
        # intake already groups the calls that arrive together (below)
        self._script = register(unbatched(redis), _LUA / "intake.lua")
        self._busy: set[int] = set()  # partitions with a call in flight
        self._waiting: dict[int, deque[_Waiting]] = defaultdict(deque)
        self._flushers: set[asyncio.Task[None]] = set()
        self.calls = 0  # intake.lua calls made (tests)

    async def enqueue(self, events: list[Any], received_at_ms: int) -> dict[str, int]:
        """Queue the events we handle; returns counts by outcome. Raises if Redis does not take them."""
        by_partition: dict[int, list[tuple[str, str]]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        for event in events:
            user_id, skipped = classify(event)
            if user_id is None:
                counts[skipped] += 1
                if skipped == BAD_USER_ID:  # signed with our secret, yet not from LINE's user ids: say it loudly
                    log.warning("webhook event skipped (%s): type=%s id=%s userId=%s", skipped,
                                str(event.get("type"))[:40], str(event.get("webhookEventId"))[:40],
                                repr(event["source"]["userId"][:40]))
                    continue
                log.info("webhook event skipped (%s): type=%s id=%s", skipped,
                         event.get("type") if isinstance(event, dict) else type(event).__name__,
                         event.get("webhookEventId") if isinstance(event, dict) else None)
                continue
            p = partition_of(user_id, self.partitions)
            by_partition[p].append((event["webhookEventId"], json.dumps(event, ensure_ascii=False)))
        if len(by_partition) == 1:  # LINE's usual webhook: one event, or one user's
            [(p, items)] = by_partition.items()
            outcomes = [await self._queue(p, items, received_at_ms)]
        else:
            outcomes = await asyncio.gather(*(self._queue(p, items, received_at_ms)
                                              for p, items in by_partition.items()))
        for flags in outcomes:
            added = flags.count("1")
            counts["queued"] += added
            counts["duplicate"] += len(flags) - added
        return dict(counts)

    async def enqueue_entry(self, lane: str, event_id: str, entry: dict[str, Any], received_at_ms: int) -> bool:
        """Queue one entry that did not come from LINE (a Shopify webhook: bot/shopify/) in the partition of its
        lane, with the same seen-key dedupe and group commit. True when queued, False for a duplicate."""
        flags = await self._queue(partition_of(lane, self.partitions),
                                  [(event_id, json.dumps(entry, ensure_ascii=False))], received_at_ms)
        return flags == "1"

    async def _queue(self, p: int, items: list[tuple[str, str]], received_at_ms: int) -> str:
        """One webhook's events of partition p: "1" queued / "0" duplicate, per event."""
        if p in self._busy:  # a call is in flight: go in the next one, with whatever else arrives meanwhile
            waiting = _Waiting(items, received_at_ms, asyncio.get_running_loop().create_future())
            self._waiting[p].append(waiting)
            return await waiting.queued
        self._busy.add(p)
        try:
            return await self._call(p, items, received_at_ms)
        finally:
            if self._waiting[p]:  # the partition stays busy until the flusher has taken them all
                flusher = asyncio.create_task(self._flush(p))
                self._flushers.add(flusher)
                flusher.add_done_callback(self._flushers.discard)
            else:
                self._busy.discard(p)

    async def _call(self, p: int, items: list[tuple[str, str]], received_at_ms: int) -> str:
        self.calls += 1
        flags = await self._script(keys=[keys.stream(p), *(keys.seen(p, event_id) for event_id, _ in items)],
                                   args=[SEEN_TTL_SECONDS, received_at_ms, *(raw for _, raw in items)])
        return flags.decode() if isinstance(flags, bytes) else str(flags)

    async def _flush(self, p: int) -> None:
        """While webhooks wait for partition p: all of them (up to MAX_BATCH events) in each call."""
        waiting = self._waiting[p]
        batch: list[_Waiting] = []
        try:
            while waiting:
                batch, size = [], 0
                while waiting and (not batch or size + len(waiting[0].items) <= MAX_BATCH):
                    batch.append(waiting.popleft())
                    size += len(batch[-1].items)
                try:
                    # the earliest receipt for all: the reply deadline counts from it, so it is never late
                    flags = await self._call(p, [item for w in batch for item in w.items],
                                             min(w.received_at_ms for w in batch))
                except Exception as exc:
                    for w in batch:
                        if not w.queued.done():
                            w.queued.set_exception(exc)
                    continue
                at = 0
                for w in batch:
                    if not w.queued.done():
                        w.queued.set_result(flags[at:at + len(w.items)])
                    at += len(w.items)
                batch = []
        finally:  # cancelled (the app stopping): nobody waits for ever
            for w in [*batch, *waiting]:
                if not w.queued.done():
                    w.queued.set_exception(RedisConnectionError("the intake stopped"))
            waiting.clear()
            self._busy.discard(p)
