"""The program's facts, kept to be replayed: what happened, not what it paid.

Points change only through the ledger, which says what each rule paid but not what would have happened under
other rules. So beside it, each fact the program accepts is written down once: a join (follow, first sighting,
unfollow), an attribution (friend, code, referrer), a purchase (order, amount, time), a refund, a claim, a
shop's custom event, a birthday or profile change, a staff adjustment or review decision, an imported member
or order. `python -m bot whatif` (rewards/whatif.py) replays them under draft rules.

Stored compact: one hash per shop-time day (rewards/keys.py facts_day), op key -> "<seq> <JSON with short
names>", kept FACTS_KEPT_DAYS. Each write is its own single-key script (fact_put.lua), called right after the
step that accepted the fact and keyed by that step's operation id, so a redelivery or retry of the step finds
its fact and writes nothing, and a crash between the two is mended by that redelivery. A fact is one round
trip, on the events that carry one only (not on plain messages). Each key is its own cluster slot.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rewards import engine, keys
from rewards.part import Part
from rewards.rules import Rules

FACTS_KEPT_DAYS = 400  # a year and a month: a whole year of history to replay, like the daily stats
FACTS_KEPT_SECONDS = FACTS_KEPT_DAYS * 86_400
SEQ = "#"  # the day's last sequence number, in the day's hash
# who decides by the rules themselves, not as a fact of the program: the budget's monthly release of held
# completions (rewards/budget_holds.py CLOCK). A replay makes those decisions again, under its own rules.
BY_THE_RULES = ("budget",)


@dataclass(frozen=True)
class Fact:
    day: str  # the shop-time day it was accepted on
    seq: int  # its place in that day
    key: str  # the op key it was stored under (unique)
    body: dict[str, Any]  # k: kind, t: when it was accepted (ms), and the kind's own fields

    @property
    def kind(self) -> str:
        return str(self.body["k"])

    @property
    def at_ms(self) -> int:
        return int(self.body["t"])


class Facts(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int]):
        super().__init__(redis, rules, now_ms)
        self._put = self.script("fact_put")
        self.enabled = True  # off in the what-if sandbox: a replay records nothing

    async def record(self, key: str, kind: str, **fields: Any) -> bool:
        """Write the fact `kind` once under `key` (the accepting step's operation id); True when written now.
        Fields that are None are left out."""
        if not self.enabled:
            return False
        now = self.now_ms()
        body = json.dumps({"k": kind, "t": now, **{k: v for k, v in fields.items() if v is not None}},
                          separators=(",", ":"), ensure_ascii=False)
        return bool(await self._put(keys=[keys.facts_day(self.day_of(now))], args=[key, body, FACTS_KEPT_SECONDS]))

    def day_of(self, at_ms: int) -> str:
        return engine.shop_time(self.rules, at_ms).strftime("%Y-%m-%d")

    def days(self, count: int, until_ms: int) -> list[str]:
        """The `count` shop-time days up to and including the day of `until_ms`, oldest first."""
        last = engine.shop_time(self.rules, until_ms)
        return [(last - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(count - 1, -1, -1)]

    async def read(self, days: int, until_ms: int) -> list[Fact]:
        """Every fact of the last `days` days, in the order they were accepted. Read only."""
        names = self.days(days, until_ms)
        out: list[Fact] = []
        for day in names:  # one day at a time: a busy day's hash is read alone (HSCAN keeps each reply small)
            async for field, raw in self.redis.hscan_iter(keys.facts_day(day), count=1000):
                key = field.decode()
                if key == SEQ:
                    continue
                seq, _, body = raw.decode().partition(" ")
                out.append(Fact(day=day, seq=int(seq), key=key, body=json.loads(body)))
        out.sort(key=lambda f: (f.day, f.seq))
        return out

    # ---- a member's data on request (rewards/privacy.py add_plumbing) ----------------------------------------------
    async def _naming(self, uid: str) -> list[tuple[str, str, bytes]]:
        """(day key, field, stored value) of every kept fact that names the member."""
        needle = uid.encode()
        day_keys = [keys.facts_day(day) for day in self.days(FACTS_KEPT_DAYS, self.now_ms())]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in day_keys:
                pipe.exists(key)
            present = await pipe.execute()
        found = []
        for key, there in zip(day_keys, present, strict=True):
            if there:
                async for field, raw in self.redis.hscan_iter(key, count=1000):
                    if needle in field or needle in raw:
                        found.append((key, field.decode(), raw))
        return found

    async def export(self, uid: str) -> dict[str, Any]:
        """The facts kept about the member (for the what-if replay), and the keys holding them."""
        found = await self._naming(uid)
        return {"facts": [json.loads(raw.decode().partition(" ")[2]) for _, _, raw in found],
                "keys": sorted({key for key, _, _ in found})}

    async def forget(self, uid: str) -> None:
        """Erasure: the member's own facts go (a replay no longer counts them); an attribution of a friend to them
        keeps the friend's referral, paid to a pseudonym (one for every such fact of this erasure)."""
        pseudonym = "X" + secrets.token_hex(16)
        for key, field, raw in await self._naming(uid):
            seq, _, body = raw.decode().partition(" ")
            fact = json.loads(body)
            if fact.get("k") == "a" and fact.get("r") == uid and fact.get("u") != uid:
                fact["r"] = pseudonym
                await self.redis.hset(key, field, f"{seq} {json.dumps(fact, separators=(',', ':'))}")
            else:
                await self.redis.hdel(key, field)
