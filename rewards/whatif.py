"""What if the rules had been different? The program's recorded facts (rewards/facts.py) replayed in a sandbox.

The replay runs the real program (every part, every Lua script) on a Redis of its own that starts empty: once
under the live rules and once under a draft, each from the same facts in the order they were accepted, with the
program's clock set to each fact's time. Nothing is written where the facts are read from: they are read with
HSCAN only, and the sandbox must hold no key at all when a replay starts (so it can never be the live Redis).

Facts of different members go side by side (the commands of those in flight share round trips), but two facts
that touch the same member — a friend and their referrer count as one — go in the order they were accepted, so
each member's history, and every cap and milestone judged on it, is as it was.
"""
from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

from rewards import budget_holds, codes, engine, keys, ledger_codec
from rewards.budget import REFERRAL
from rewards.errors import ProgramError
from rewards.facts import Fact
from rewards.imports import MemberRow, OrderRow
from rewards.program import Program
from rewards.rules import Rules

MAX_IN_FLIGHT = 256  # facts replayed at once (of different members)
READ_CHUNK = 500  # members read back per pipeline when the totals are counted

Sandbox = Callable[[], AbstractAsyncContextManager[Any]]  # a fresh, empty Redis client each time it is entered

_now: contextvars.ContextVar[int] = contextvars.ContextVar("whatif_now")


class SandboxNotEmpty(RuntimeError):
    """The replay refuses a Redis that holds anything: it could be the live one."""


class _ReplayProgram(Program):
    """The program whose clock is the replayed fact's time (each fact in flight has its own, a context variable),
    and which keeps no facts of its own."""

    def now_ms(self) -> int:
        return _now.get()


class _Tally:
    """The program's counters, added up in this process instead of in Redis: a counter is only ever added to and
    never read by the program, so the sums are the same, for half the sandbox's commands."""

    def __init__(self, rules: Rules, now_ms: Callable[[], int]):
        self.rules = rules
        self.now_ms = now_ms
        self.total: Counter[str] = Counter()
        self.by_day: dict[str, Counter[str]] = {}

    async def count(self, name: str, by: int = 1) -> None:
        day = engine.shop_time(self.rules, self.now_ms()).strftime("%Y-%m-%d")
        self.total[name] += by
        self.by_day.setdefault(day, Counter())[name] += by


@dataclass
class Totals:
    """What one replay came to. The first four names are the contract's (CONTRACT.md "Program economics")."""
    points_issued: int
    yen_cost: int
    referrals_completed: int
    members_per_tier: dict[str, int]
    milestone_payouts: int  # milestone rewards paid
    milestone_points: int
    capped_months: list[str]  # months whose referral budget ([budget] referral_monthly_yen) was reached
    held_for_budget: int  # referral completions still held for the budget at the end
    yen_by_month: dict[str, int]  # yen issued per shop-time month
    facts: int
    refused: dict[str, int] = field(default_factory=dict)  # facts the program refused under these rules, by kind

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def lanes(facts: Iterable[Fact]) -> list[set[str]]:
    """Per fact, the members it touches: its member, and a referred friend's referrer (known from the
    attributions before it). A refund names its order: its member is the order's buyer."""
    referrer_of: dict[str, str] = {}
    buyer_of: dict[str, str] = {}
    out = []
    for f in facts:
        b = f.body
        uid = b.get("u") or buyer_of.get(str(b.get("o")), f"o:{b.get('o')}")
        if f.kind == "a":
            referrer_of.setdefault(uid, str(b["r"]))
        if f.kind in ("p", "io"):
            buyer_of[str(b["o"])] = uid
        touched = {uid}
        if f.kind == "a":
            touched.add(str(b["r"]))
        if uid in referrer_of:
            touched.add(referrer_of[uid])
        out.append(touched)
    return out


async def _in_order(program: Program, facts: list[Fact], refused: Counter[str],
                    month_end: Callable[[int, int], Awaitable[None]]) -> None:
    """Every fact, each once the facts before it that touch one of its members are done; the others meanwhile
    (at most MAX_IN_FLIGHT at a time). Between two shop-time months everything in flight finishes first and
    `month_end(last fact's time, next fact's time or 0)` runs: what the clock does when a month turns."""
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    last: dict[str, asyncio.Future[None]] = {}  # member -> the latest fact of theirs so far
    running: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    async def one(f: Fact, after: list[asyncio.Future[None]], done: asyncio.Future[None]) -> None:
        try:
            for earlier in after:
                await earlier
            await _apply_counted(program, f, refused)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set_result(None)
            slots.release()

    loop = asyncio.get_running_loop()
    month, last_ms = "", 0
    for f, touched in zip(facts, lanes(facts), strict=True):
        this_month = engine.shop_time(program.rules, f.at_ms).strftime("%Y-%m")
        if month and this_month != month:
            if running:
                await asyncio.wait(running)
            await month_end(last_ms, f.at_ms)
        month, last_ms = this_month, f.at_ms
        await slots.acquire()
        if failures:
            break
        done = loop.create_future()
        after = [last[m] for m in touched if m in last]
        for m in touched:
            last[m] = done
        task = asyncio.create_task(one(f, after, done))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(running)
    if failures:
        raise failures[0]
    if month:
        await month_end(last_ms, 0)


async def _apply(program: Program, f: Fact) -> None:
    """One fact, through the same call that accepted it live."""
    _now.set(f.at_ms)
    b = f.body
    kind = f.kind
    if kind == "s":
        await program.sighting_and_step(b["u"], b["v"], b["at"])
    elif kind == "w":  # the first follow: its sighting, then the welcome (as the follow handler does)
        await program.sighting_and_step(b["u"], "follow", b["at"])
        await program.welcome_points(b["u"], b["at"], b.get("e", ""))
    elif kind == "a":
        normal = codes.normalise(b["c"])
        if normal:  # the code's owner, as the live program had minted it
            await program.redis.hsetnx(keys.codes(normal), normal, b["r"])
        await program.attribute(b["u"], b["c"], op=b["o"])
    elif kind == "d":
        await program.decide_referral(b["u"], b["d"], b["b"])
    elif kind == "p":
        await program.record_purchase(b["o"], b["u"], int(b["a"]), int(b["at"]), b.get("f"))
    elif kind == "r":
        await program.orders.refund_part(b["o"], b.get("r", ""), b.get("y"))
    elif kind == "e":
        await program.custom_event(b["u"], b["n"], b["i"], int(b["at"]))
    elif kind == "B":
        await program.set_birthday(b["u"], int(b["m"]), int(b["d"]))
    elif kind == "L":
        await program.set_language(b["u"], b["l"])
    elif kind == "bd":
        await program.birthday_points(b["u"], int(b["at"]))
    elif kind == "x":
        await program.adjust(b["u"], int(b["p"]), b["r"], b["s"], b["o"])
    elif kind == "c":
        written, _ = await program.spend(b["u"], b["o"], int(b["p"]), b["r"], b.get("n", ""))
        if written == -1:
            raise ProgramError("NOT_ENOUGH_POINTS", "the claim could not be paid under these rules")
    elif kind == "im":
        await program.imports.member(MemberRow(user_id=b["u"], customer_id=b.get("cu"), points=b.get("p"),
                                               joined_at_ms=b.get("j")))
    elif kind == "io":
        await program.imports.order(OrderRow(order_id=b["o"], amount=int(b["a"]), occurred_at_ms=int(b["at"]),
                                             user_id=b.get("u")))
    else:
        raise ValueError(f"a fact of an unknown kind {kind!r} ({f.key})")


async def _apply_counted(program: Program, f: Fact, refused: Counter[str]) -> None:
    try:
        await _apply(program, f)
    except ProgramError as exc:  # refused under these rules (a claim the points no longer cover, an event…)
        refused[f"{f.kind}:{exc.code}"] += 1


async def replay(redis: Any, rules: Rules, facts: list[Fact], end_ms: int) -> Totals:
    """Replay `facts` (in order) under `rules` on the empty Redis `redis`, and count what they came to at
    `end_ms` (the moment tiers are judged at)."""
    if await redis.dbsize():
        raise SandboxNotEmpty("the what-if sandbox must be an empty Redis of its own")
    program = _ReplayProgram(redis, rules)
    program.facts.enabled = False
    tally = _Tally(rules, program.now_ms)
    program.counters.count = tally.count  # type: ignore[method-assign]  # every part holds this one Counters
    refused: Counter[str] = Counter()
    capped: list[str] = []

    async def month_end(last_ms: int, next_ms: int) -> None:
        _now.set(last_ms)
        status = await program.budget.status(REFERRAL)
        if status.state == "reached":
            capped.append(status.month)
        if next_ms:  # the clock at the new month: held completions its budget can pay are released
            _now.set(next_ms)
            await budget_holds.release(program, budget_holds.CLOCK, new_month_only=True)

    await _in_order(program, facts, refused, month_end)
    _now.set(end_ms)
    await program.settle_all()  # what the live worker's sweep would have finished
    return await _totals(program, rules, tally, refused, capped, len(facts))


async def _totals(program: Program, rules: Rules, tally: _Tally, refused: Counter[str], capped: list[str],
                  count: int) -> Totals:
    stats = tally.total
    points = stats.get("points_issued", 0)
    uids = await program.member_ids()
    tiers = {t.name: 0 for t in rules.tiers}
    milestones = milestone_points = 0
    milestone_ops = [ledger_codec.op_field(f"milestone:{m.count}") for m in rules.milestones]
    for i in range(0, len(uids), READ_CHUNK):
        chunk = uids[i:i + READ_CHUNK]
        for member in await program.member_facts(chunk):
            tiers[member.tier] = tiers.get(member.tier, 0) + 1
        if not milestone_ops:
            continue
        async with program.redis.pipeline(transaction=False) as pipe:  # the entry each milestone op wrote, if any
            for uid in chunk:
                pipe.hmget(keys.ops(uid), milestone_ops)
            paid = [(uid, int(entry_id)) for uid, ids in zip(chunk, await pipe.execute(), strict=True)
                    for entry_id in ids if entry_id is not None]
        async with program.redis.pipeline(transaction=False) as pipe:
            for uid, entry_id in paid:
                pipe.hget(keys.ops(uid), ledger_codec.entry_field(entry_id))
            for (_, entry_id), raw in zip(paid, await pipe.execute(), strict=True):
                entry = ledger_codec.decode(entry_id, raw)
                if entry["delta"] > 0:
                    milestones += 1
                    milestone_points += entry["delta"]
    by_month: Counter[str] = Counter()
    for day, counted in tally.by_day.items():
        by_month[day[:7]] += counted.get("points_issued", 0)
    yen_by_month = {month: rules.yen(points) for month, points in sorted(by_month.items())}
    return Totals(points_issued=points, yen_cost=rules.yen(points),
                  referrals_completed=stats.get("referrals_completed", 0), members_per_tier=tiers,
                  milestone_payouts=milestones, milestone_points=milestone_points,
                  capped_months=capped, held_for_budget=len(await program.budget.held()), yen_by_month=yen_by_month,
                  facts=count,
                  refused=dict(sorted(refused.items())))


async def compare(facts: list[Fact], live: Rules, draft: Rules, sandbox: Sandbox, end_ms: int) -> dict[str, Totals]:
    """The same facts under the live rules and under the draft, each in a sandbox of its own (side by side)."""
    async def one(rules: Rules) -> Totals:
        async with sandbox() as redis:
            return await replay(redis, rules, facts, end_ms)

    live_totals, draft_totals = await asyncio.gather(one(live), one(draft))
    return {"live": live_totals, "draft": draft_totals}
