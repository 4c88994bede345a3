"""Durable intake: webhook events go into Redis Streams, partitioned by user so each user's events stay in order."""
from __future__ import annotations

import json
import logging
import re
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from bot.infra import keys
from rewards.scripts import register

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 7 * 86_400  # longer than LINE's redelivery window
HANDLED_TYPES = frozenset({"message", "follow", "unfollow", "postback"})
# LINE's user ids; anything else would be queued and then used in Redis keys: "" or "}" would even put one
# member's keys in different cluster slots (their hash tag {U…} would be empty or broken)
USER_ID = re.compile(r"U[0-9a-f]{32}")
BAD_USER_ID = "bad_user_id"
_LUA = Path(__file__).resolve().parent / "lua"


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


class Intake:
    def __init__(self, redis: Any, partitions: int):
        self.redis = redis
        self.partitions = partitions
        self._script = register(redis, _LUA / "intake.lua")

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
        for p, items in by_partition.items():
            added = await self._script(
                keys=[keys.stream(p), *(keys.seen(p, event_id) for event_id, _ in items)],
                args=[SEEN_TTL_SECONDS, received_at_ms, *(raw for _, raw in items)])
            counts["queued"] += int(added)
            counts["duplicate"] += len(items) - int(added)
        return dict(counts)
