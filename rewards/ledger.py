"""A member's points: awards and spends written to the ledger, and the ledger's entries and lots read back.

Every script that moves points starts with the prelude rewards/lua/ledger.lua (an entry and its operation id
are written together, so a known op is a no-op); what an earning is worth is decided here, in Python
(rewards/engine.py), and passed to the script as data.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards import engine, keys, ledger_codec
from rewards.counters import Counters
from rewards.engine import Award
from rewards.part import Part
from rewards.rules import Rules, Tier


@dataclass(frozen=True)
class LedgerLine:
    delta: int
    kind: str
    rule: str
    at_ms: int
    balance: int
    state: str = "available"


class Ledger(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], counters: Counters):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self._apply = self.script("apply_points", moves_points=True)

    @property
    def write_off(self) -> bool:
        """What a refund cannot take back is forgiven (no debt) unless the rules block claims in debt."""
        return not self.rules.block_claims_in_debt

    @property
    def inactivity_ms(self) -> int:
        return self.rules.expire_after_months * 30 * 86_400_000

    def award(self, rule: str, base: int, at_ms: int, op: str, kind: str, *, tier: Tier | None = None,
              hold_days: int = 0, note: str = "") -> Award:
        """What an earning under `rule` is worth now, with the caps the rules give it."""
        earn_rule = self.rules.earn.get(rule)
        caps = self.rules.purchase_caps if rule == "purchase" else (earn_rule.caps if earn_rule else None)
        return engine.award(self.rules, rule, base, at_ms, op, kind, tier=tier, hold_days=hold_days, caps=caps,
                            note=note)

    async def earn(self, uid: str, award: Award) -> tuple[int, int]:
        """Write an award to the ledger: (1 written | 0 already done, balance)."""
        spec = award.spec(self.rules)
        written, balance = await self._apply(keys=keys.ledger_keys(uid), args=[json.dumps({"mode": "earn", **spec})])
        await self.schedule(uid, spec)
        if int(written) == 1:
            await self.counters.count("points_issued", award.amount)
        return int(written), int(balance)

    async def schedule(self, uid: str, *specs: dict[str, Any]) -> None:
        """Remember when this member's points next change by themselves (expiry, end of a hold).

        Early is harmless: maintain() looks and schedules the real next time."""
        due = [t for spec in specs for t in (spec["expires"], spec["hold_until"]) if t]
        if self.rules.expiry == "inactivity":
            due += [spec["at"] + self.inactivity_ms for spec in specs]
        if due:
            await self.redis.zadd(keys.due(uid), {uid: min(due)}, lt=True)

    async def apply(self, uid: str, op: str, delta: int, kind: str, rule: str, at_ms: int,
                    note: str = "", allow_negative: bool = False) -> tuple[int, int]:
        """One ledger entry with its operation id: (1 written | 0 already done | -1 refused, balance).

        Positive: an earning (a new lot). Negative: a spend (refused without enough spendable points),
        or with allow_negative a deduction that may leave a debt.
        """
        mode = "earn" if delta > 0 else ("deduct" if allow_negative else "spend")
        if mode == "earn":
            expires = engine.expires_ms(self.rules, engine.shop_time(self.rules, at_ms))
            return await self.earn(uid, engine.Award(op=op, rule=rule, kind=kind, amount=delta, at_ms=at_ms,
                                                     note=note, expires_ms=expires))
        spec = {"mode": mode, "op": op, "amount": -delta, "kind": kind, "rule": rule, "at": at_ms, "note": note,
                "write_off": self.write_off}
        written, balance = await self._apply(keys=keys.ledger_keys(uid), args=[json.dumps(spec)])
        return int(written), int(balance)

    async def spend(self, uid: str, op: str, points: int, rule: str, note: str = "") -> tuple[int, int]:
        """Spend points (a claim): (1 spent | 0 already done | -1 not enough spendable points, balance)."""
        written, balance = await self.apply(uid, op, -points, "claim", rule, self.now_ms(), note)
        if written == 1:
            await self.counters.count("points_spent", points)
        if written != -1:  # spent (now or before): a fact for the what-if replay, once per op
            await self.fact(f"c:{uid}:{op}", "c", u=uid, o=op, p=points, r=rule, n=note or None)
        return written, balance

    async def reverse(self, uid: str, op: str, new_op: str) -> None:
        """Take back what the earning `op` paid (once, as `new_op`); a debt if it was spent meanwhile."""
        entry = await self.entry(uid, op)
        if entry and entry["delta"] > 0:
            await self._apply(keys=keys.ledger_keys(uid), args=[json.dumps(
                {"mode": "deduct", "op": new_op, "amount": entry["delta"], "kind": "void", "rule": entry["rule"],
                 "at": self.now_ms(), "write_off": self.write_off})])

    async def entry(self, uid: str, op: str) -> dict | None:
        """The entry an operation id wrote, or None."""
        entry_id = await self.redis.hget(keys.ops(uid), ledger_codec.op_field(op))
        if entry_id is None:
            return None
        raw = await self.redis.hget(keys.ops(uid), ledger_codec.entry_field(int(entry_id)))
        return ledger_codec.decode(int(entry_id), raw, op)

    async def recent_ledger(self, uid: str, count: int = 5) -> list[LedgerLine]:
        last = int(await self.redis.hget(keys.ops(uid), ledger_codec.LAST_ID) or 0)
        ids = list(range(last, max(0, last - count * 2), -1))  # newest first
        raw = await self.redis.hmget(keys.ops(uid), [ledger_codec.entry_field(i) for i in ids]) if ids else []
        lines = [ledger_codec.decode(i, r) for i, r in zip(ids, raw, strict=True) if r is not None]
        shown = [e for e in lines if e["kind"] != "release"][:count]  # a release moves points, it earns none
        return [LedgerLine(e["delta"], e["kind"], e["rule"], e["at"], e["balance"], e.get("state", "done"))
                for e in shown]

    async def entries(self, uid: str) -> list[dict[str, Any]]:
        """Every entry, oldest first: what the member's balance is rebuilt from."""
        ops = ledger_codec.split_ops(await self.redis.hgetall(keys.ops(uid)))  # entries, op ids and lots
        entries = [ledger_codec.decode(i, ops.entries[i], ops.op_of.get(i)) for i in sorted(ops.entries)]
        for e in entries:  # an earning's expiry is stored once, in its lot (lot id = entry id)
            lot = ops.lots.get(e["id"])
            if lot is not None:
                e["expires_at"] = lot.expires_at
        return entries

    async def queued_lots(self, uid: str) -> list[ledger_codec.Lot]:
        """The member's spendable lots with points left, soonest expiry first (ledger.lua's lot queue)."""
        ids = ledger_codec.queued(await self.redis.hget(keys.ops(uid), ledger_codec.QUEUE))
        if not ids:
            return []
        raw = await self.redis.hmget(keys.ops(uid), [ledger_codec.entry_field(i) for i in ids])
        return [lot for lot in map(ledger_codec.lot_of, raw) if lot is not None]

    async def next_expiries(self, uids: list[str], queues: list[bytes | None]) -> list[int | None]:
        """Each member's soonest lot expiry (its lot queue's first lot), one round trip for them all."""
        firsts = [ledger_codec.queued(q)[:1] for q in queues]
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid, first in zip(uids, firsts, strict=True):
                if first:
                    pipe.hget(keys.ops(uid), ledger_codec.entry_field(first[0]))
            fields = iter(await pipe.execute())
        out: list[int | None] = []
        for first in firsts:
            lot = ledger_codec.lot_of(next(fields)) if first else None
            out.append(lot.expires_at if lot else None)
        return out
