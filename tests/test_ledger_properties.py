"""Property-based: random sequences of earn / hold / spend / refund / expire / adjust on one member.

After every step the balance is what the ledger says, the lots add up to it, no operation id is
written twice, and a spend never takes what is not spendable.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import ASSETS
from bot.infra.redis_conn import connect
from rewards import engine, keys, ledger_codec
from rewards.program import Program
from rewards.rules import load_rules
from tests.support.rules_helpers import Clock

RULES = load_rules(ASSETS / "rules.toml").__class__(**{
    **load_rules(ASSETS / "rules.toml").__dict__, "expire_after_months": 1, "campaigns": ()})
UID = "U" + "ab" * 16

step = st.one_of(
    st.tuples(st.just("purchase"), st.integers(0, 50_000)),
    st.tuples(st.just("held"), st.integers(1, 500), st.integers(1, 20)),
    st.tuples(st.just("spend"), st.integers(1, 800)),
    st.tuples(st.just("refund"), st.integers(0, 10)),
    st.tuples(st.just("adjust"), st.integers(-600, 600).filter(bool)),
    st.tuples(st.just("advance"), st.integers(1, 40)),
    st.tuples(st.just("replay"), st.integers(0, 30)),
)


async def check(program: Program, spent_ok: bool) -> None:
    r = program.redis
    member = await keys.read_member(r, UID)
    points, pending, debt = (int(member.get(k, 0)) for k in ("points", "pending_points", "debt"))
    entries = await program.ledger(UID)
    assert sum(e["avail"] for e in entries) == points
    assert sum(e["pend"] for e in entries) == pending
    stored = ledger_codec.split_ops(await r.hgetall(keys.ops(UID)))  # the ops hash holds entries, ops and lots
    op_of = stored.op_of
    lots = list(stored.lots.values())
    assert sorted(stored.entries) == list(range(1, len(entries) + 1)), "entry ids are 1, 2, … with no gap"
    assert int(await r.hget(keys.ops(UID), ledger_codec.LAST_ID) or 0) == len(entries)
    spendable = sum(lot.remaining for lot in lots if lot.hold_until == 0)
    held = sum(lot.remaining for lot in lots if lot.hold_until != 0)
    assert all(lot.remaining >= 0 for lot in lots)
    assert points == spendable - debt and pending == held and debt >= 0
    ops = [e["op"] for e in entries]
    assert len(ops) == len(set(ops)) == len(op_of), "an operation id was written twice"
    if spent_ok:
        assert points >= 0 and debt == 0, "a spend took what was not spendable"


async def run(url: str, steps: list[tuple]) -> None:
    client = connect(url)
    await client.flushdb()
    clock = Clock(datetime(2026, 11, 20, 12, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp())
    program = Program(client, RULES, clock=clock)
    await program.see(UID, "follow", clock.ms)
    orders: list[str] = []
    done: list[tuple] = []
    try:
        for n, s in enumerate(steps):
            spent_ok = False
            kind = s[0]
            if kind == "purchase":
                orders.append(f"o{n}")
                await program.record_purchase(f"o{n}", UID, s[1], clock.ms)
            elif kind == "held":
                award = engine.award(RULES, "referral.friend", s[1], clock.ms, f"held{n}", "referral", hold_days=s[2])
                await program.earn(UID, award)
            elif kind == "spend":
                written, _ = await program.spend(UID, f"claim{n}", s[1], "reward:x")
                spent_ok = written == 1
            elif kind == "refund" and orders:
                await program.refund(orders[s[1] % len(orders)])
            elif kind == "adjust":
                await program.adjust(UID, s[1], "property test", "prop", f"adj{n}")
            elif kind == "advance":
                clock.advance(days=s[1])
                await program.maintain_due()
            elif kind == "replay" and done:  # the same operation again changes nothing
                before = await client.hgetall(keys.member(UID))
                old = done[s[1] % len(done)]
                if old[0] == "spend":
                    await program.spend(UID, f"claim{old[2]}", old[1], "reward:x")
                elif old[0] == "adjust":
                    await program.adjust(UID, old[1], "property test", "prop", f"adj{old[2]}")
                elif old[0] == "purchase":
                    await program.record_purchase(f"o{old[2]}", UID, old[1], clock.ms)
                assert await client.hgetall(keys.member(UID)) == before
            if kind in ("adjust", "purchase") or spent_ok:  # a refused spend wrote nothing to replay
                done.append((kind, s[1], n))
            await check(program, spent_ok)
    finally:
        await client.aclose()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_the_ledger_always_adds_up(redis_url: str, steps: list[tuple]) -> None:
    asyncio.run(run(redis_url, steps))
