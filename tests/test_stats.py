"""The program's numbers on a small scripted program with a set clock: conversion, K-factor, referrals per
referrer, viral cycle time, points issued and the by-day rows come out exactly."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from bot.config import ASSETS
from bot.infra.redis_conn import connect
from linesim.platform import new_user_id
from rewards import stats
from rewards.program import Program
from rewards.rules import load_rules

DAY = 86_400_000


@pytest.fixture
async def scripted(clean_redis: str) -> Any:
    client = connect(clean_redis)  # a cluster client on the cluster run
    rules = load_rules(ASSETS / "rules.toml")
    start = int(datetime(2026, 3, 2, 10, 0, tzinfo=rules.timezone).timestamp() * 1000)
    now = [start]
    program = Program(client, rules, clock=lambda: now[0] / 1000)
    yield program, now, start
    await client.aclose()


async def join(program: Program, now: list[int], at: int) -> str:
    now[0] = at
    uid = new_user_id()
    await program.see(uid, "follow", at)
    await program.welcome_points(uid, at)
    return uid


async def refer_and_buy(program: Program, now: list[int], referrer: str, friend: str, bought_at: int,
                        order: str) -> None:
    now[0] = bought_at - 3_600_000
    assert (await program.attribute(friend, await program.invite_code(referrer), op=f"ev-{order}")).ok
    now[0] = bought_at
    await program.record_purchase(order, friend, 2000, bought_at)


async def test_the_numbers_of_a_small_program_are_exact(scripted: Any) -> None:
    program, now, t0 = scripted
    a = await join(program, now, t0)
    d = await join(program, now, t0 + 1 * DAY)
    b = await join(program, now, t0 + 1 * DAY + 1000)
    c = await join(program, now, t0 + 2 * DAY)
    e = await join(program, now, t0 + 4 * DAY)
    for _ in range(6):
        await program.count("invite_pages_opened")  # what bot/web/pages/invite.py does per page view
    await refer_and_buy(program, now, a, b, t0 + 2 * DAY, "o-b")  # A's first: 2 days after A joined
    await refer_and_buy(program, now, a, c, t0 + 3 * DAY, "o-c")
    await refer_and_buy(program, now, d, e, t0 + 5 * DAY, "o-e")  # D's first: 4 days after D joined
    now[0] = t0 + 5 * DAY + 1000

    report = await stats.report(program, days=7)

    assert report["members"] == 5
    assert report["referrals"]["completed"] == 3 and report["referrals"]["pending"] == 3
    assert report["codes_sent"] == 3 and report["invite_pages_opened"] == 6
    assert report["conversion_rate"] == 0.5  # 3 completed / 6 pages opened
    assert report["k_factor"] == 0.6  # 3 completed / 5 members
    assert report["referrals_per_referrer"] == 1.5  # 3 completed / 2 referrers
    assert report["viral_cycle_time_days"] == 3.0  # median of 2 and 4 days
    assert report["viral_cycle_time_ms"] == 3 * DAY
    assert report["top_referrers"] == [{"user_id": a, "completed": 2}, {"user_id": d, "completed": 1}]
    assert report["referred_revenue_yen"] == 6000 and report["orders"] == 3
    earned = 0
    for uid in (a, b, c, d, e):
        earned += sum(entry["delta"] for entry in await program.ledger(uid) if entry["delta"] > 0)
    assert report["points"]["issued"] == earned
    by_day = {row["day"]: row for row in report["by_day"]}
    assert len(report["by_day"]) == 7 and report["to"] == "2026-03-07"
    assert by_day["2026-03-04"]["referrals_completed"] == 1  # B's order, day 2
    assert by_day["2026-03-07"]["referrals_completed"] == 1  # E's order, day 5
    assert by_day["2026-03-07"]["k_factor"] == 0.2

    # a shorter period leaves A's first referral (day 2) out of the cycle time
    recent = await stats.report(program, days=2)
    assert recent["referrals"]["completed"] == 1 and recent["viral_cycle_time_days"] == 4.0


async def test_no_activity_gives_no_ratios(scripted: Any) -> None:
    program, _, _ = scripted
    report = await stats.report(program, days=90)
    assert len(report["by_day"]) == 90
    assert report["conversion_rate"] is None and report["viral_cycle_time_ms"] is None
    assert report["k_factor"] is None and report["top_referrers"] == []
