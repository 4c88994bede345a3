"""Referrals staff look at: the list by status, and the decision on one held for review.

A referral goes to "review" when the friend's qualifying order carries a fingerprint already seen on the
referrer's orders (Program.record_purchase, review_reason FINGERPRINT), or, with [rings] mode "hold", when the
friend is in a flagged referral ring (review_reason RING, rewards/ring_watch.py). Staff approve it (it
completes: both sides are paid, each once, by the usual single-member steps) or void it (nobody is paid).
Pending referrals may be voided too. With [rings] mode "flag" a flagged referral keeps its status and pays as
usual, but is listed with the review queue, marked by its `ring`; approving it clears the flag.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from rewards import buckets, keys
from rewards.program import Program

STATUSES = ("pending", "review", "completed", "voided", "refused")
SCAN_CHUNK = 500


@dataclass(frozen=True)
class Decision:
    friend: str
    referrer: str
    status: str  # the referral's status now
    changed: bool  # False: the same decision was already taken
    paid_referrer: str | None = None  # the referrer, when this call paid them (tell them then)


@dataclass(frozen=True)
class Side:
    """One member of the pair, as the evidence shows them."""

    user_id: str
    nickname: str | None  # staff see it whether or not the member let the board show it
    first_seen_at: int | None  # ms
    followed_at: int | None
    orders: int
    spent_yen: int
    fingerprints: list[str]  # the order fingerprints seen on their orders, sorted
    referred_by: str | None
    blocked: bool


@dataclass(frozen=True)
class Evidence:
    """What staff weigh before deciding a referral: who, the order, the fingerprints they share, the timing
    (follow → attribution → purchase) and the pair's history."""

    record: dict[str, str]  # the friend's referral record (status, code, created_at, review_at, decided by…)
    friend: Side
    referrer: Side
    order_id: str | None
    order_yen: int | None
    shared_fingerprints: list[str]  # seen on both sides' orders: why it was held
    follow_to_attribution_ms: int | None
    attribution_to_purchase_ms: int | None
    referrer_referrals: dict[str, int] = field(default_factory=dict)  # the referrer's referrals by status
    mutual: bool = False  # the friend had referred the referrer: the two take turns

    @property
    def status(self) -> str:
        return self.record.get("status", "")

    @property
    def decided_by(self) -> str | None:
        return self.record.get("approved_by") or self.record.get("voided_by")

    @property
    def ring(self) -> dict[str, str] | None:
        """A referral-ring flag ([rings], rewards/ring_watch.py): group, score, reasons, cleared_by; None: none."""
        if not self.record.get("ring"):
            return None
        return {"group": self.record["ring"], "score": self.record.get("ring_score", ""),
                "reasons": self.record.get("ring_reasons", ""), "cleared_by": self.record.get("ring_cleared", "")}

    @property
    def flagged_only(self) -> bool:
        """Flagged as part of a ring but not held ([rings] mode "flag"): approving it clears the flag."""
        return _ring_flagged(self.record)

    @property
    def decided_at(self) -> int | None:
        at = self.record.get("voided_at") if self.record.get("voided_by") else (
            self.record.get("completed_at") if self.record.get("approved_by") else None)
        return int(at) if at else None


def _int(value: str | None) -> int | None:
    return int(value) if value else None


class ReferralReview:
    def __init__(self, program: Program):
        self.program = program
        self.redis = program.redis

    async def referral(self, friend: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(keys.referral(friend))
        if not raw:
            return None
        return {"friend": friend} | {k.decode(): v.decode() for k, v in raw.items()}

    async def referrals(self, status: str) -> list[dict[str, str]]:
        """Every referral with that status, newest first. "refused" means voided (by staff, a refund or a
        block). Reads each member's own record (the source of truth), so it costs one round trip per
        SCAN_CHUNK members."""
        wanted = "voided" if status == "refused" else status
        members = sorted(await buckets.member_ids(self.redis))
        found = []
        for start in range(0, len(members), SCAN_CHUNK):
            chunk = members[start:start + SCAN_CHUNK]
            async with self.redis.pipeline(transaction=False) as pipe:
                for uid in chunk:
                    pipe.hgetall(keys.referral(uid))
                records = await pipe.execute()
            for uid, raw in zip(chunk, records, strict=True):
                record = {k.decode(): v.decode() for k, v in raw.items()}
                if record.get("status") == wanted or (wanted == "review" and _ring_flagged(record)):
                    found.append({"friend": uid} | record)
        return sorted(found, key=lambda r: int(r.get("created_at", 0)), reverse=True)

    async def evidence(self, friend: str) -> Evidence | None:
        """The evidence on the friend's referral (None: never referred). Read only."""
        record = await self.referral(friend)
        if record is None or not record.get("referrer"):
            return None
        referrer = record["referrer"]
        order_id = record.get("order")
        (friend_side, friend_fps), (referrer_side, referrer_fps), order, made = await asyncio.gather(
            self._side(friend), self._side(referrer),
            self.redis.hget(keys.orders(friend), order_id) if order_id else asyncio.sleep(0),
            self.redis.hgetall(keys.referrals_made(referrer)))
        statuses = (await self.program.referrals.statuses([made]))[0]
        by_status: dict[str, int] = {}
        for status in statuses.values():
            by_status[status] = by_status.get(status, 0) + 1
        attributed = _int(record.get("created_at"))
        bought = _int(record.get("review_at")) or (_int(record.get("completed_at")) if order_id else None)
        followed = friend_side.followed_at or friend_side.first_seen_at
        return Evidence(
            record=record, friend=friend_side, referrer=referrer_side, order_id=order_id,
            order_yen=int(json.loads(order)["amount"]) if order else None,
            shared_fingerprints=sorted(friend_fps & referrer_fps),
            follow_to_attribution_ms=attributed - followed if attributed and followed else None,
            attribution_to_purchase_ms=bought - attributed if bought and attributed else None,
            referrer_referrals=dict(sorted(by_status.items())), mutual=referrer_side.referred_by == friend)

    async def _side(self, uid: str) -> tuple[Side, set[str]]:
        record, fingerprints = await asyncio.gather(keys.read_member(self.redis, uid),
                                                    self.redis.smembers(keys.fingerprints(uid)))
        found = {f.decode() for f in fingerprints}
        return Side(user_id=uid, nickname=record.get("nickname"), first_seen_at=_int(record.get("first_seen_at")),
                    followed_at=_int(record.get("followed_at")), orders=int(record.get("orders", 0)),
                    spent_yen=int(record.get("spent", 0)), fingerprints=sorted(found),
                    referred_by=record.get("referred_by"), blocked=record.get("blocked") == "1"), found

    async def flagged_only(self, friend: str) -> bool:
        """Flagged as part of a ring but not held (flag mode): approving it means dismissing the flag."""
        record = await self.referral(friend)
        return record is not None and _ring_flagged(record)

    async def dismiss_ring(self, friend: str, by: str) -> bool:
        """A referral flagged as part of a ring (flag mode: not held) that staff found honest: off the queue and
        never flagged again, audited. False: it carries no ring flag."""
        if not await self.redis.hexists(keys.referral(friend), "ring"):
            return False
        await self.redis.hset(keys.referral(friend), "ring_cleared", by)
        record = await self.referral(friend) or {}
        await self.program.audit(by, "dismiss_ring", friend, op=f"ring:dismiss:{friend}",
                                 referrer=record.get("referrer", ""), ring=record.get("ring", ""))
        return True

    async def approve(self, friend: str, by: str, **details: str) -> Decision:
        """Approve and audit (`details` go into the audit entry)."""
        return await self._take("approve", friend, by, details)

    async def void(self, friend: str, by: str, **details: str) -> Decision:
        """Void and audit (`details` go into the audit entry)."""
        return await self._take("void", friend, by, details)

    async def _take(self, decision: str, friend: str, by: str, details: dict[str, str]) -> Decision:
        changed, status, paid_referrer = await self.program.decide_referral(friend, decision, by)
        if decision == "approve" and await self.redis.hexists(keys.referral(friend), "ring"):
            await self.redis.hset(keys.referral(friend), "ring_cleared", by)  # staff looked: not flagged again
        record = await self.referral(friend) or {}
        referrer = record.get("referrer", "")
        # A referral is decided once, so the decision is audited once per referral: also when the decision
        # was taken by an earlier try that failed before its audit entry. Who and the status it left come
        # from the record, not from this call, so a retry records what the first try did.
        approved = decision == "approve"
        await self.program.audit(record.get("approved_by" if approved else "voided_by", by),
                                 "approve_referral" if approved else "void_referral", friend,
                                 op=f"review:{friend}", referrer=referrer,
                                 before="review" if approved else record.get("voided_from", ""), after=status,
                                 **details)
        return Decision(friend=friend, referrer=referrer, status=status, changed=changed, paid_referrer=paid_referrer)


def _ring_flagged(record: dict[str, str]) -> bool:
    """Flagged as part of a referral ring (flag mode: its status did not change) and not yet looked at by staff."""
    return bool(record.get("ring")) and not record.get("ring_cleared") and not record.get("approved_by") \
        and record.get("status") in ("pending", "completed")
