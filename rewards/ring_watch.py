"""Referral rings in the live program: the signals kept, the detector run, suspicious groups put in review.

What is kept (hashes only, never a card, an address or a customer id): each member's marks in their own slot
(keys.ring_marks) and, per mark, the members it was seen on (keys.ring_mark), written as orders come. The
rest is read where it already lives: who referred whom and when (the referral records), joins and blocks
(the member record), the first coupon taken (the coupon order zset).

When it runs ([rings] mode "flag" or "hold"):
- after each new attribution and before each first order completes a referral, on the member's neighbourhood
  (referrer, their friends, the friend's friends, whoever shares a mark): cheap, and in time to hold the
  referral before anyone is paid (bursts, quick referrers, cycles, shared fingerprints show by then);
- a whole-graph pass in the worker's clock every `every_minutes`: signals that come later (a block after the
  coupon, a Shopify customer or address on a later order) and rings wider than a neighbourhood.

A flagged group's referred members get `ring`, `ring_score` and `ring_reasons` in their referral record, which
puts them in the review queue (rewards/review.py). In "hold" mode purchase.lua reads `ring` in the same step that
would complete the referral and holds it for staff instead (review_reason RING); approving it pays both sides
once through review_decide.lua, as for a fingerprint hold. A referral staff approved keeps `ring_cleared` and is
not flagged again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from rewards import buckets, keys
from rewards.counters import Counters
from rewards.part import Part
from rewards.rings import Group, Member, detect, flagged
from rewards.rules import Rules

log = logging.getLogger(__name__)

CHUNK = 500  # members read per pipelined round trip
NEIGHBOURS_MAX = 500  # a local check reads at most this many members
FLAGGABLE = ("pending", "review", "completed")


def mark_of(kind: str, value: str) -> str:
    """A signal as it is kept: its kind and a hash (the raw value never reaches Redis)."""
    return f"{kind}:{hashlib.sha256(f'shokai-ring:{kind}:{value}'.encode()).hexdigest()[:24]}"


class RingWatch(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self.settings = rules.rings

    @property
    def on(self) -> bool:
        return self.settings.mode != "off"

    # ---- signals, as orders come --------------------------------------------------------------------------
    async def note(self, uid: str, marks: Iterable[str], coupon_holders: Iterable[str] = ()) -> None:
        """Keep an order's marks (already hashed: mark_of) and the members whose coupons it carried."""
        if not self.on:
            return
        kept = [*marks, *(f"used:{h}" for h in coupon_holders if h and h != uid)]
        if not kept:
            return
        await self.redis.sadd(keys.ring_marks(uid), *kept)
        for mark in kept:
            if not mark.startswith("used:"):
                await self.redis.sadd(keys.ring_mark(mark), uid)

    async def before_completion(self, uid: str, fingerprint: str | None) -> bool:
        """An order of `uid` is about to be recorded: keep its fingerprint and, when it may complete a pending
        referral, look at the neighbourhood first. True: hold a flagged referral (purchase.lua decides)."""
        if not self.on:
            return False
        if fingerprint:
            await self.note(uid, [mark_of("fp", fingerprint)])
        status, first_order = await self.redis.hget(keys.referral(uid), "status"), \
            await self.redis.hget(keys.member(uid), keys.field("first_order"))
        if status == b"pending" and first_order is None:
            await self.check(uid)
        return self.settings.mode == "hold"

    async def after_attribution(self, friend: str) -> None:
        if self.on:
            await self.check(friend)

    # ---- detection ------------------------------------------------------------------------------------------
    async def check(self, uid: str) -> list[Group]:
        """The detector over the member's neighbourhood; flags what it finds there. Returns the flagged groups."""
        loaded: dict[str, tuple[Member, list[str]]] = {}
        wanted = {uid}
        for _ in range(3):  # the member, then who they touch, then who those touch
            wanted -= set(loaded)
            if not wanted:
                break
            loaded.update(await self._load(sorted(wanted)[:NEIGHBOURS_MAX - len(loaded)]))
            wanted = set()
            for member, friends in loaded.values():
                wanted.update(friends)
                if member.referrer:
                    wanted.add(member.referrer)
                wanted.update(h.removeprefix("used:") for h in member.used_coupons_of)
            wanted |= await self._sharing({m for member, _ in loaded.values() for m in member.marks})
            if len(loaded) >= NEIGHBOURS_MAX:
                break
        groups = flagged(detect((m for m, _ in loaded.values()), self.settings), self.settings)
        mine = [g for g in groups if uid in g.members]
        for group in mine:
            await self._flag(group)
        return mine

    async def scan(self) -> list[Group]:
        """The whole graph: every member, every signal. Flags each suspicious group; returns them."""
        uids = sorted(await buckets.member_ids(self.redis))
        members: list[Member] = []
        for start in range(0, len(uids), CHUNK):
            members.extend(m for m, _ in (await self._load(uids[start:start + CHUNK], with_friends=False)).values())
        groups = flagged(detect(members, self.settings), self.settings)
        for group in groups:
            await self._flag(group)
        await self.redis.set(keys.RING_SCANNED, self.now_ms())
        return groups

    async def scan_due(self, now_ms: int | None = None) -> list[Group] | None:
        """The clock's call: a whole-graph pass when `every_minutes` passed since the last (None: not yet)."""
        if not self.on:
            return None
        now = now_ms if now_ms is not None else self.now_ms()
        last = int(await self.redis.get(keys.RING_SCANNED) or 0)
        if now - last < self.settings.every_minutes * 60_000:
            return None
        return await self.scan()

    async def export(self, uid: str) -> dict[str, Any]:
        """A member's data export: the hashed marks seen on their orders and the flagged groups naming them."""
        marks = sorted(m.decode() for m in await self.redis.smembers(keys.ring_marks(uid)))
        groups = [g for g in await self.groups() if uid in g["members"]]
        return {"ring_marks": marks, "ring_groups": groups}

    async def forget(self, uid: str) -> None:
        """A member's erasure (APPI, Shopify's redact): their marks, their place in each mark's index and in the
        groups kept go; the referral records' ring fields go with the records. Idempotent."""
        marks = [m.decode() for m in await self.redis.smembers(keys.ring_marks(uid))]
        for mark in marks:
            if not mark.startswith("used:"):
                await self.redis.srem(keys.ring_mark(mark), uid)
        await self.redis.delete(keys.ring_marks(uid))
        for group_id, raw in (await self.redis.hgetall(keys.RING_GROUPS)).items():
            doc = json.loads(raw)
            if uid in doc["members"]:
                doc["members"] = [m for m in doc["members"] if m != uid]
                await self.redis.hset(keys.RING_GROUPS, group_id, json.dumps(doc))

    async def groups(self) -> list[dict[str, Any]]:
        """The flagged groups kept, highest score first."""
        raw = await self.redis.hgetall(keys.RING_GROUPS)
        return sorted((json.loads(v) for v in raw.values()), key=lambda g: (-g["score"], g["id"]))

    async def _sharing(self, marks: set[str]) -> set[str]:
        """The members seen with any of these marks (a mark on more than mark_max members is ignored)."""
        marks = {m for m in marks if not m.startswith("used:")}
        if not marks:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for mark in sorted(marks):
                pipe.scard(keys.ring_mark(mark))
            sizes = await pipe.execute()
        small = [m for m, n in zip(sorted(marks), sizes, strict=True) if 1 < n <= self.settings.mark_max]
        if not small:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for mark in small:
                pipe.smembers(keys.ring_mark(mark))
            found = await pipe.execute()
        return {u.decode() for members in found for u in members}

    async def _load(self, uids: list[str], with_friends: bool = True) -> dict[str, tuple[Member, list[str]]]:
        """The detector's input for these members, with each one's friends (a local check follows them; the
        whole-graph pass has everyone already): one pipelined round trip."""
        if not uids:
            return {}
        fields = [keys.field(n) for n in ("first_seen_at", "blocked_at")]
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hmget(keys.referral(uid), ["referrer", "created_at"])
                pipe.hmget(keys.member(uid), fields)
                pipe.zrange(keys.coupon_order(uid), 0, 0, withscores=True)
                pipe.smembers(keys.ring_marks(uid))
                pipe.smembers(keys.fingerprints(uid))
                if with_friends:
                    pipe.hkeys(keys.referrals_made(uid))
            replies = await pipe.execute()
        out = {}
        each = 6 if with_friends else 5
        for i, uid in enumerate(uids):
            (referrer, referred_at), (joined, blocked), first_coupon, marks, prints, *made = \
                replies[i * each:(i + 1) * each]
            kept = {m.decode() for m in marks}
            kept |= {mark_of("fp", p.decode()) for p in prints}  # orders reported before detection was on
            member = Member(uid=uid, referrer=referrer.decode() if referrer else None,
                            referred_at=int(referred_at or 0), joined_at=int(joined or 0),
                            claimed_at=int(first_coupon[0][1]) if first_coupon else 0, blocked_at=int(blocked or 0),
                            marks=frozenset(m for m in kept if not m.startswith("used:")),
                            used_coupons_of=frozenset(m.removeprefix("used:") for m in kept if m.startswith("used:")))
            friends = [f.decode() for f in (made[0] if made else []) if b"|" not in f]
            out[uid] = (member, friends)
        return out

    async def _flag(self, group: Group) -> None:
        """Into the review queue: each referred member's record names the group, its score and reasons."""
        at = self.now_ms()
        reasons = group.reason_text()
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in group.members:
                pipe.hmget(keys.referral(uid), ["status", "ring_cleared", "ring"])
            records = await pipe.execute()
        flagged_now = 0
        for uid, (status, cleared, ring) in zip(group.members, records, strict=True):
            if cleared or (status or b"").decode() not in FLAGGABLE:
                continue
            await self.redis.hset(keys.referral(uid), mapping={"ring": group.id, "ring_score": group.score,
                                                               "ring_reasons": reasons, "ring_at": at})
            flagged_now += ring is None
        doc = {"id": group.id, "members": list(group.members), "score": group.score, "reasons": group.reasons,
               "at": at, "mode": self.settings.mode}
        if await self.redis.hset(keys.RING_GROUPS, group.id, json.dumps(doc)):
            await self.counters.count("rings_flagged")
            log.warning("referral ring %s flagged (%s mode): %d members, score %.2f: %s", group.id,
                        self.settings.mode, len(group.members), group.score, reasons)
        if flagged_now:
            await self.counters.count("referrals_ring_flagged", flagged_now)
