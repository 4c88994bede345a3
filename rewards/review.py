"""Referrals staff look at: the list by status, and the decision on one held for review.

A referral goes to "review" when the friend's qualifying order carries a fingerprint already seen on the
referrer's orders (Program.record_purchase, review_reason FINGERPRINT), or, with [rings] mode "hold", when the
friend is in a flagged referral ring (review_reason RING, rewards/ring_watch.py). Staff approve it (it
completes: both sides are paid, each once, by the usual single-member steps) or void it (nobody is paid).
Pending referrals may be voided too. With [rings] mode "flag" a flagged referral keeps its status and pays as
usual, but is listed with the review queue, marked by its `ring`; approving it clears the flag.
"""
from __future__ import annotations

from dataclasses import dataclass

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
