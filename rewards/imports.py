"""What the shop already has, imported: its members (friends from before, with an opening balance and a customer
link) and their past orders (for "already a customer" and tiers by spend, earning nothing).

One row at a time, each write idempotent under its operation id, so importing the same file again changes nothing
and an import cut short by a crash is finished by importing the file again:
- a member row: the customer link in the customer's slot (`import_link.lua`: only while the customer is linked to
  nobody else), then the member's own step in their slot (`import_member.lua`: first seen 'import', the opening
  balance under op id `import`, the link's mirror). The customer step comes first, so the member's mirror is never
  written for a customer who is not theirs (the rule of rewards/links.py: the customer's record is the truth).
- an order row: its owner key (SET NX, as any order), then `import_order.lua` in the buyer's slot: order counts
  and spend, no points, no referral step, no notice.
The rows' format (CSV, codes for bad rows) is the web side's: bot/web/api/imports.py.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards import buckets, engine, keys
from rewards.engine import Award
from rewards.ledger import Ledger
from rewards.links import Links
from rewards.members import Members
from rewards.part import Part
from rewards.rules import Caps, Rules

OPENING_OP = "import"  # the opening balance's op id: one per member, ever
IMPORTED = "import"  # first_seen_via of a member the shop imported (attribute.lua: never referable as new)


@dataclass(frozen=True)
class MemberRow:
    user_id: str
    customer_id: str | None = None
    points: int | None = None
    joined_at_ms: int | None = None


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    amount: int
    occurred_at_ms: int
    user_id: str | None = None
    customer_id: str | None = None


class Imports(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, ledger: Ledger, members: Members,
                 links: Links):
        super().__init__(redis, rules, now_ms)
        self.ledger = ledger
        self.members = members
        self.links = links
        self._member = self.script("import_member", moves_points=True)
        self._link = self.script("import_link")
        self._order = self.script("import_order")

    async def member(self, row: MemberRow) -> str:
        """One member row: "imported" (something changed), "skipped" (all of it was there already) or a row error
        code (nothing written): CUSTOMER_LINKED_ELSEWHERE, MEMBER_LINKED_ELSEWHERE, POINTS_DIFFER."""
        uid, now = row.user_id, self.now_ms()
        if row.points:  # checked before the link, so a refused row writes nothing anywhere (the script checks again)
            prior = await self.ledger.entry(uid, OPENING_OP)
            if prior is not None and int(prior["delta"]) != row.points:
                return "POINTS_DIFFER"
        changed = False
        if row.customer_id:
            linked = await self.links.customer_of(uid)
            if linked is not None and linked != row.customer_id:
                return "MEMBER_LINKED_ELSEWHERE"
            outcome = (await self._link(keys=[keys.customer(row.customer_id)],
                                        args=[uid, f"import:{uid}", now])).decode()
            if outcome == "TAKEN":
                return "CUSTOMER_LINKED_ELSEWHERE"
            changed = outcome == "LINKED"
        award = self._opening(row.points, now) if row.points else None
        spec = award.spec(self.rules) if award else None
        verdict, member_changed = await self._member(
            keys=keys.ledger_keys(uid),
            args=[json.dumps({"joined": row.joined_at_ms if row.joined_at_ms is not None else now, "award": spec,
                              "customer": row.customer_id or ""})])
        if verdict.decode() != "OK":
            return verdict.decode()
        await buckets.add_member(self.redis, uid)
        if spec:
            await self.ledger.schedule(uid, spec)
        await self.fact(f"im:{uid}", "im", u=uid, cu=row.customer_id, p=row.points, j=row.joined_at_ms)
        if row.customer_id:  # orders the shop reported for this customer before: credited as on any link
            await self.links.credit(row.customer_id, now)
        return "imported" if changed or int(member_changed) else "skipped"

    def _opening(self, points: int, now: int) -> Award:
        """The opening balance: the points as they are (no campaign, no tier multiplier), expiring by the rules as
        points earned today."""
        return Award(op=OPENING_OP, rule="import", kind="import", amount=points, at_ms=now,
                     expires_ms=engine.expires_ms(self.rules, engine.shop_time(self.rules, now)), hold_until_ms=0,
                     caps=Caps(), note="opening balance")

    async def order(self, row: OrderRow) -> str:
        """One past order: "imported", "skipped" (known already) or a row error code (nothing written):
        UNKNOWN_CUSTOMER (no member linked to that customer), ORDER_CONFLICT (the order id is someone else's)."""
        uid = row.user_id
        if uid is None:
            uid = await self.links.user_of(row.customer_id or "")
            if uid is None:
                return "UNKNOWN_CUSTOMER"
        owner_key = keys.order_owner(row.order_id)
        if not await self.redis.set(owner_key, uid, nx=True):
            owner = await self.redis.get(owner_key)
            if owner is None or owner.decode() != uid:
                return "ORDER_CONFLICT"
        month = engine.shop_time(self.rules, row.occurred_at_ms).strftime("%Y-%m")
        new = await self._order(keys=[keys.member(uid), keys.orders(uid)],
                                args=[json.dumps({"order": row.order_id, "amount": row.amount,
                                                  "at": row.occurred_at_ms, "month": month})])
        await buckets.add_member(self.redis, uid)
        await self.fact(f"io:{row.order_id}", "io", o=row.order_id, a=row.amount, at=row.occurred_at_ms, u=uid)
        # a tier reached through history is not news: marked told, so no push follows the next event
        rise = await self.members.tier_rise(uid)
        if rise:
            await self.members.mark_tier_told(uid, rise)
        return "imported" if int(new) else "skipped"
