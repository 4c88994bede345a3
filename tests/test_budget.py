"""[budget]: a monthly referral budget in yen, checked atomically. Concurrent completions at the cap never spend
past it (the rest wait in review, reason BUDGET); a held completion is paid once however often it is released;
a new month's budget pays what the last one held."""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest_asyncio

from bot.infra.redis_conn import connect
from linesim.platform import new_user_id
from rewards import budget_holds, keys, stats
from rewards.program import Program
from rewards.review import ReferralReview
from rewards.rules import load_rules
from tests.support.rules_helpers import DEFAULT, Clock, program_for

JST = ZoneInfo("Asia/Tokyo")
COMPLETION_YEN = 800  # the shipped rules: referrer 500 + friend 300 points, at ¥1 a point
NO_MILESTONES = re.sub(r"\[\[referral\.milestones\]\][^\[]*", "", DEFAULT)


def with_cap(text: str, cap: int) -> str:
    """The rules text with [budget] referral_monthly_yen set to `cap`."""
    changed = re.sub(r"^referral_monthly_yen = \d+", f"referral_monthly_yen = {cap}", text, count=1, flags=re.M)
    assert changed != text or cap == 0, "no [budget] referral_monthly_yen in the shipped rules"
    return changed


def budget_rules(tmp: Path, cap: int, text: str = NO_MILESTONES) -> Path:
    path = tmp / f"rules-budget-{cap}.toml"
    path.write_text(with_cap(text, cap), encoding="utf-8")
    return path


@pytest_asyncio.fixture
async def make(clean_redis: str, tmp_path: Path) -> AsyncIterator[Callable]:
    made: list[Program] = []

    async def factory(cap: int, text: str = NO_MILESTONES) -> tuple[Program, Clock]:
        clock = Clock(datetime(2026, 11, 20, 12, tzinfo=JST).timestamp())
        program = await program_for(clean_redis, budget_rules(tmp_path, cap, text), clock)
        made.append(program)
        return program, clock

    yield factory
    for program in made:
        await program.redis.aclose()


async def pending_referrals(program: Program, clock: Clock, n: int) -> list[tuple[str, str]]:
    """n referrers, each with one friend attributed and not yet bought."""
    pairs = []
    for _ in range(n):
        referrer, friend = new_user_id(), new_user_id()
        await program.see(referrer, "follow", clock.ms)
        await program.see(friend, "follow", clock.ms)
        outcome = await program.attribute(friend, await program.invite_code(referrer), op=f"ev-{friend}")
        assert outcome.ok, outcome
        pairs.append((referrer, friend))
    return pairs


async def status_of(program: Program, friend: str) -> tuple[str, str | None]:
    status, reason = await program.redis.hmget(keys.referral(friend), ["status", "review_reason"])
    return status.decode(), reason.decode() if reason else None


async def referral_yen_paid(program: Program, pairs: list[tuple[str, str]]) -> int:
    """What the ledgers say the referrals paid, in yen: the friend's and the referrer's entries."""
    points = 0
    for referrer, friend in pairs:
        for uid, op in ((friend, "referral:friend"), (friend, "referral:gift"), (referrer, f"referral:{friend}")):
            entry = await program.points_ledger.entry(uid, op)
            points += int(entry["delta"]) if entry else 0
    return program.rules.yen(points)


async def test_concurrent_completions_at_the_cap_never_overshoot_it_and_the_rest_wait_in_review(make) -> None:
    cap = 10 * COMPLETION_YEN + COMPLETION_YEN // 2  # room for ten and a half completions
    program, clock = await make(cap)
    pairs = await pending_referrals(program, clock, 30)
    await asyncio.gather(*(program.record_purchase(f"o-{friend}", friend, 3000) for _, friend in pairs))
    statuses = [await status_of(program, friend) for _, friend in pairs]
    completed = [s for s in statuses if s[0] == "completed"]
    held = [s for s in statuses if s == ("review", "BUDGET")]
    assert len(completed) == 10 and len(held) == 20, statuses
    status = await program.budget.status()
    assert status.spent_yen == 10 * COMPLETION_YEN <= cap
    assert status.spent_yen == await referral_yen_paid(program, pairs)  # the spend is what the ledgers paid
    assert status.state == "reached" and status.held == 20
    queue = await ReferralReview(program).referrals("review")
    assert {r["friend"] for r in queue} == {f for _, f in pairs if (await status_of(program, f))[0] == "review"}
    assert all(r["review_reason"] == "BUDGET" for r in queue)
    # the held friends' points are not paid, and a repeat of their orders changes nothing
    for _, friend in pairs:
        await program.record_purchase(f"o-{friend}", friend, 3000)
    assert (await program.budget.status()).spent_yen == 10 * COMPLETION_YEN


async def test_a_race_from_several_clients_still_stops_at_the_cap(make, clean_redis: str) -> None:
    program, clock = await make(5 * COMPLETION_YEN)
    pairs = await pending_referrals(program, clock, 16)
    clients = [Program(connect(clean_redis), program.rules, clock=clock) for _ in range(3)]
    try:
        await asyncio.gather(*(clients[i % 3].record_purchase(f"o-{f}", f, 3000) for i, (_, f) in enumerate(pairs)))
    finally:
        for client in clients:
            await client.redis.aclose()
    statuses = [await status_of(program, f) for _, f in pairs]
    assert sum(s[0] == "completed" for s in statuses) == 5
    assert sum(s == ("review", "BUDGET") for s in statuses) == 11
    assert (await program.budget.status()).spent_yen == 5 * COMPLETION_YEN == await referral_yen_paid(program, pairs)


async def test_a_held_completion_released_twice_pays_each_side_once(make) -> None:
    program, clock = await make(COMPLETION_YEN)
    pairs = await pending_referrals(program, clock, 2)
    for _, friend in pairs:
        await program.record_purchase(f"o-{friend}", friend, 3000)
    (_, paid), (referrer, held) = pairs
    assert await status_of(program, paid) == ("completed", None)
    assert await status_of(program, held) == ("review", "BUDGET")
    assert await program.points_ledger.entry(held, "referral:friend") is None  # nothing paid while held
    first = await budget_holds.release(program, "owner")
    again = await budget_holds.release(program, "owner", [held])
    assert [d.friend for d in first] == [held] and first[0].status == "completed" and first[0].changed
    assert again == []  # no longer held: nothing to release
    # approving it through the review queue as well changes nothing either
    decision = await ReferralReview(program).approve(held, "owner")
    assert not decision.changed
    entries = [e for e in await program.ledger(held) if e.get("op") == "referral:friend"]
    assert len(entries) == 1
    assert len([e for e in await program.ledger(referrer) if e.get("op") == f"referral:{held}"]) == 1
    status = await program.budget.status()
    assert status.spent_yen == 2 * COMPLETION_YEN == await referral_yen_paid(program, pairs)  # the owner's: past the cap
    assert status.held == 0
    audit = [e for e in await program.redis.xrange(keys.AUDIT) if e[1].get(b"member") == held.encode()]
    assert len(audit) == 1  # the release is audited once


async def test_a_new_month_pays_what_the_last_one_held_as_far_as_its_budget_goes(make) -> None:
    program, clock = await make(2 * COMPLETION_YEN)
    pairs = await pending_referrals(program, clock, 5)
    for _, friend in pairs:
        await program.record_purchase(f"o-{friend}", friend, 3000)
    assert (await program.budget.status()).held == 3
    assert await budget_holds.release(program, budget_holds.CLOCK, new_month_only=True) == []  # same month: wait
    clock.now = datetime(2026, 12, 1, 0, 1, tzinfo=JST).timestamp()  # December, shop time
    released = await budget_holds.release(program, budget_holds.CLOCK, new_month_only=True)
    assert len(released) == 2  # December's budget pays two; the third waits for January
    december = await program.budget.status()
    assert (december.month, december.spent_yen, december.held) == ("2026-12", 2 * COMPLETION_YEN, 1)
    assert await budget_holds.release(program, budget_holds.CLOCK, new_month_only=True) == []
    clock.now = datetime(2027, 1, 1, 0, 1, tzinfo=JST).timestamp()
    assert len(await budget_holds.release(program, budget_holds.CLOCK, new_month_only=True)) == 1
    assert [(await status_of(program, f))[0] for _, f in pairs] == ["completed"] * 5


async def test_a_milestone_within_reach_is_reserved_so_it_cannot_overshoot_either(make) -> None:
    # the shipped milestones: 500 points at 3 referrals. A referrer at 2 reserves the friend, their share and it
    program, clock = await make(3 * COMPLETION_YEN + 500, DEFAULT)
    referrer = new_user_id()
    await program.see(referrer, "follow", clock.ms)
    code = await program.invite_code(referrer)
    friends = [new_user_id() for _ in range(4)]
    for friend in friends:
        await program.see(friend, "follow", clock.ms)
        assert (await program.attribute(friend, code, op=f"ev-{friend}")).ok
    for friend in friends[:3]:
        await program.record_purchase(f"o-{friend}", friend, 3000)
    spent = (await program.budget.status()).spent_yen
    assert spent == 3 * COMPLETION_YEN + 500  # three completions and the milestone they reached: exactly the cap
    await program.record_purchase(f"o-{friends[3]}", friends[3], 3000)
    assert await status_of(program, friends[3]) == ("review", "BUDGET")
    assert (await program.budget.status()).spent_yen == spent


async def test_no_budget_set_holds_nothing(make, tmp_path: Path) -> None:
    program, clock = await make(0)
    pairs = await pending_referrals(program, clock, 3)
    for _, friend in pairs:
        await program.record_purchase(f"o-{friend}", friend, 3000)
    assert [(await status_of(program, f))[0] for _, f in pairs] == ["completed"] * 3
    status = await program.budget.status()
    assert (status.state, status.cap_yen, status.share) == ("none", 0, None)
    assert load_rules(budget_rules(tmp_path, 0)).budget.referral_monthly_yen == 0


async def test_the_stats_show_yen_beside_every_points_figure_and_the_budget(make) -> None:
    text = re.sub(r"^point_value_yen = .*$", "point_value_yen = 2.5", NO_MILESTONES, count=1, flags=re.M)
    program, clock = await make(10_000, text)
    pairs = await pending_referrals(program, clock, 2)
    for _, friend in pairs:
        await program.record_purchase(f"o-{friend}", friend, 3000)  # 30 purchase points + the referral's
    await program.spend(pairs[0][1], "spend-1", 100, "test")
    report = await stats.report(program, days=1)
    points = report["points"]
    issued = 2 * (30 + 300 + 500)
    assert (points["issued"], points["issued_yen"]) == (issued, issued * 5 // 2)
    assert (points["spent"], points["spent_yen"]) == (100, 250)
    assert (points["expired"], points["expired_yen"]) == (0, 0)
    balances = [await program.member(uid) for pair in pairs for uid in pair]
    owed = sum(v.points + v.pending_points for v in balances if v)
    assert (points["outstanding"], points["outstanding_yen"]) == (owed, program.rules.yen(owed)) == (issued - 100,
                                                                                                    (issued - 100) * 5 // 2)
    day = report["by_day"][-1]
    assert (day["points_issued_yen"], day["points_spent_yen"]) == (issued * 5 // 2, 250)
    budget = report["budget"]["referral"]
    assert (budget["spent_yen"], budget["cap_yen"], budget["state"]) == (2 * 800 * 5 // 2, 10_000, "ok")


async def test_the_campaign_budget_stops_the_campaigns_extra_points_at_its_cap(make) -> None:
    text = re.sub(r"^campaign_monthly_yen = \d+", "campaign_monthly_yen = 45", NO_MILESTONES, count=1, flags=re.M)
    program, clock = await make(0, text)
    clock.now = datetime(2027, 3, 26, 12, tzinfo=JST).timestamp()  # the shipped sakura campaign: purchase x2
    buyers = [new_user_id() for _ in range(3)]
    earned = []
    for n, uid in enumerate(buyers):
        await program.see(uid, "follow", clock.ms)
        earned.append((await program.record_purchase(f"c-{n}", uid, 3000)).answer["purchase_points"])
    # ¥3,000 earns 30 points, 60 with the campaign: its 30 extra fit ¥45 once, then orders earn without it
    assert earned == [60, 30, 30]
    status = await program.budget.status("campaign")
    assert (status.spent_yen, status.cap_yen, status.state) == (30, 45, "reached")  # it refused an extra
    again = await program.record_purchase("c-0", buyers[0], 3000)  # a repeat of the first order: counted once
    assert again.answer["purchase_points"] == 60 and (await program.budget.status("campaign")).spent_yen == 30


async def test_an_erased_member_leaves_nothing_of_theirs_in_the_budget(make) -> None:
    program, clock = await make(COMPLETION_YEN)
    pairs = await pending_referrals(program, clock, 2)
    for _, friend in pairs:
        await program.record_purchase(f"o-{friend}", friend, 3000)
    paid, held = pairs[0][1], pairs[1][1]
    exported = await program.privacy.export(held)
    assert "referral_held_for_budget" in json.dumps(exported)  # the export says their completion waits
    for friend in (paid, held):
        assert await program.privacy.erase(friend, "test") is not None
    assert not await program.budget.is_held(held)
    budget_keys = [k async for k in program.redis.scan_iter(match="shokai:budget:*")]
    for key in budget_keys:
        kind = (await program.redis.type(key)).decode()
        dump = await program.redis.hgetall(key) if kind == "hash" else await program.redis.zrange(key, 0, -1)
        assert paid.encode() not in repr(dump).encode() and held.encode() not in repr(dump).encode(), (key, dump)
