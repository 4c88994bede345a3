"""What if? The program's facts are kept as it accepts them (rewards/facts.py) and replayed in a sandbox under the
live rules and a draft (rewards/whatif.py, `python -m bot whatif`). A small scripted history, driven through the
program's own calls (those the handlers, the admin API and the Shopify webhooks make)."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.config import Settings
from bot.whatif import embedded_sandbox
from bot.whatif import run as whatif_run
from rewards.imports import MemberRow
from rewards.program import Program
from rewards.rules import load_rules
from rewards.whatif import SandboxNotEmpty, Totals, compare, replay
from tests.support.fixtures import sync_client
from tests.support.harness import ADMIN, BASIC_ID, PUBLIC, SECRET, TOKEN
from tests.support.rules_helpers import TEST_RULES, Clock, program_for, variant

R, X, IMPORTED = "U" + "r" * 32, "U" + "x" * 32, "U" + "i" * 32
FRIENDS = [f"U{i:032d}" for i in range(1, 5)]


async def history(program: Program, clock: Clock) -> None:
    """A referrer and four friends (three referrals complete: a milestone), a member with a profile, an event, a
    staff adjustment and a claim, an imported member, a refund; and a few things said twice (redeliveries)."""
    async def follow(uid: str, times: int = 1) -> None:
        for _ in range(times):  # a redelivery carries the same event
            await program.see(uid, "follow", clock.ms)
            await program.welcome_points(uid, clock.ms, f"ev-follow-{uid}")
        clock.advance(minutes=1)

    await follow(R, times=2)
    code = await program.invite_code(R)
    for i, friend in enumerate(FRIENDS):
        await follow(friend)
        for _ in range(2):  # the code message, and its redelivery
            assert (await program.attribute(friend, code, op=f"ev-code-{i}")).ok
        if i < 3:
            for _ in range(2):  # the order, and the shop reporting it again
                await program.record_purchase(f"o-{i}", friend, 2_000 + 1_000 * i, clock.ms)
        clock.advance(minutes=5)
    await program.record_purchase("o-r", R, 12_000, clock.ms)
    await program.orders.refund_part("o-r", "rf-1", 2_000)  # a partial refund (Shopify's)
    await follow(X)
    await program.set_language(X, "en")
    await program.set_birthday(X, 2, 29)
    await program.custom_event(X, "review", "rv-1", clock.ms)
    await program.adjust(X, 120, "sorry for the wait", "staff-1", "adj-1")
    await program.spend(R, "claim:c-1", 300, "reward:coffee", "c-1")
    await program.imports.member(MemberRow(user_id=IMPORTED, points=800, joined_at_ms=clock.ms - 86_400_000))
    await program.settle_all()


async def live_totals(program: Program) -> tuple[int, int, dict[str, int]]:
    stats = await program.stats()
    tiers = Counter(m.tier for m in await program.member_facts(await program.member_ids()))
    return stats["points_issued"], stats["referrals_completed"], {
        t.name: tiers.get(t.name, 0) for t in program.rules.tiers}


def snapshot(url: str) -> dict[bytes, bytes | None]:
    """Every key and its value (DUMP), to prove a replay changed nothing."""
    client = sync_client(url)
    try:
        return {k: client.dump(k) for k in client.scan_iter(count=1000)}
    finally:
        client.close()


async def test_the_live_rules_reproduce_the_live_totals_and_a_draft_gives_the_expected_differences(
        clean_redis: str, tmp_path: Path) -> None:
    clock = Clock(time.time() - 2 * 86_400)
    program = await program_for(clean_redis, TEST_RULES, clock)
    await history(program, clock)
    points, completed, tiers = await live_totals(program)
    assert completed == 3 and points > 0

    facts = await program.facts.read(7, clock.ms)
    assert Counter(f.kind for f in facts) == {"w": 6, "a": 4, "p": 4, "r": 1, "L": 1, "B": 1, "e": 1,
                                              "x": 1, "c": 1, "im": 1}  # each once, redeliveries or not
    before = snapshot(clean_redis)

    # the draft: referrers paid double, a new milestone at 2, and a point costs ¥2
    draft = load_rules(variant(tmp_path, referral__referrer_points=1000, points__point_value_yen=2,
                               extra="[[referral.milestones]]\ncount = 2\npoints = 300\n"))
    result = await compare(facts, program.rules, draft, embedded_sandbox, clock.ms)
    live, changed = result["live"], result["draft"]

    assert (live.points_issued, live.referrals_completed, live.members_per_tier) == (points, completed, tiers)
    assert live.yen_cost == points  # ¥1 a point
    assert (live.milestone_payouts, live.milestone_points) == (1, 500)  # the 3rd referral
    assert live.refused == {}
    assert changed.points_issued == points + 3 * 500 + 300
    assert changed.yen_cost == 2 * changed.points_issued
    assert changed.referrals_completed == 3
    assert (changed.milestone_payouts, changed.milestone_points) == (2, 800)
    assert changed.capped_months == live.capped_months == []
    assert sum(changed.members_per_tier.values()) == sum(tiers.values()) == 7  # R, four friends, X, the imported one
    assert snapshot(clean_redis) == before  # the live data was only read

    with pytest.raises(SandboxNotEmpty):  # the live Redis is never a sandbox
        await replay(program.redis, program.rules, facts, clock.ms)
    await program.redis.aclose()


async def test_a_claim_the_draft_no_longer_covers_is_counted_as_refused(clean_redis: str, tmp_path: Path) -> None:
    clock = Clock(time.time() - 86_400)
    program = await program_for(clean_redis, TEST_RULES, clock)
    await program.see(X, "follow", clock.ms)
    await program.welcome_points(X, clock.ms)
    await program.record_purchase("o-1", X, 30_000, clock.ms)  # 100 + 300 points
    assert (await program.spend(X, "claim:c-1", 300, "reward:coffee"))[0] == 1
    facts = await program.facts.read(2, clock.ms)
    draft = load_rules(variant(tmp_path, earn__purchase__yen_per_point=1000))  # 100 + 30 points: short of 300
    result = await compare(facts, program.rules, draft, embedded_sandbox, clock.ms)
    assert (result["live"].points_issued, result["draft"].points_issued) == (400, 130)
    assert result["draft"].refused == {"c:NOT_ENOUGH_POINTS": 1} and result["live"].refused == {}
    await program.redis.aclose()


async def test_the_command_answers_one_json_object_with_the_contract_names(clean_redis: str, tmp_path: Path) -> None:
    clock = Clock(time.time() - 3_600)
    program = await program_for(clean_redis, TEST_RULES, clock)
    await program.see(R, "follow", clock.ms)
    await program.welcome_points(R, clock.ms)
    await program.redis.aclose()
    settings = Settings(channel_secret=SECRET, channel_access_token=TOKEN, public_base_url=PUBLIC,
                        redis_url=clean_redis, line_basic_id=BASIC_ID, admin_token=ADMIN, rewards_config=TEST_RULES)
    draft = variant(tmp_path, earn__signup__points=150)
    # two days: the facts are an hour old, which is yesterday's day (JST) between 00:00 and 01:00 JST
    out = json.loads(await whatif_run(settings, draft, 2, True, int(time.time() * 1000)))
    assert set(out) == {"live", "draft"}
    for side in out.values():
        assert set(Totals.__dataclass_fields__) == set(side)
        assert {"points_issued", "yen_cost", "referrals_completed", "members_per_tier"} <= set(side)
    assert (out["live"]["points_issued"], out["draft"]["points_issued"]) == (100, 150)
    assert out["draft"]["members_per_tier"]["bronze"] == 1
    text = await whatif_run(settings, draft, 2, False, int(time.time() * 1000))
    assert "points issued" in text and "+50" in text and "bronze" in text


def test_a_bad_draft_is_refused_naming_the_setting_and_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"LINE_CHANNEL_SECRET": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
                        "PUBLIC_BASE_URL": PUBLIC, "REWARDS_CONFIG": str(TEST_RULES),
                        "REDIS_URL": "redis://127.0.0.1:1/0"}.items():  # never reached: the draft is read first
        monkeypatch.setenv(name, value)
    draft = variant(tmp_path, referral__referrer_points='"lots"')
    line = next(n for n, text in enumerate(draft.read_text().splitlines(), 1) if text.startswith("referrer_points"))
    assert main(["whatif", "--rules", str(draft), "--json"]) == 2
    err = capsys.readouterr().err
    assert "referral.referrer_points" in err and f"line {line}" in err
    with pytest.raises(SystemExit):  # argparse: "--days must be a number of days from 1 to 400"
        main(["whatif", "--rules", str(draft), "--days", "0"])
    assert "--days must be a number of days from 1 to 400" in capsys.readouterr().err


async def test_generated_facts_side_by_side_come_to_what_they_do_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's generator (benchmarks/whatif.py), small and seeded: facts of different members replayed side
    by side (the speed) add up exactly as the same facts replayed strictly one after another."""
    from benchmarks.whatif import generate

    end = int(time.time() * 1000)
    facts = generate(400, seed=3, start_ms=end - 10 * 86_400_000, days=10)
    rules = load_rules(TEST_RULES)
    async with embedded_sandbox() as redis:
        side_by_side = await replay(redis, rules, facts, end)
    monkeypatch.setattr("rewards.whatif.MAX_IN_FLIGHT", 1)
    async with embedded_sandbox() as redis:
        one_by_one = await replay(redis, rules, facts, end)
    assert side_by_side == one_by_one
    assert side_by_side.referrals_completed > 10 and side_by_side.milestone_payouts > 0


async def test_an_erased_members_facts_are_exported_then_gone_and_their_friends_referrals_stay(clean_redis: str) -> None:
    clock = Clock(time.time() - 86_400)
    program = await program_for(clean_redis, TEST_RULES, clock)
    await history(program, clock)
    exported = await program.facts.export(R)
    assert {f["k"] for f in exported["facts"]} == {"w", "a", "p", "r", "c"} and exported["keys"]
    await program.facts.forget(R)
    facts = await program.facts.read(2, clock.ms)
    assert not [f for f in facts if R in f.key or R in json.dumps(f.body)]
    attributions = [f.body for f in facts if f.kind == "a"]
    assert len(attributions) == 4 and len({a["r"] for a in attributions}) == 1 and attributions[0]["r"][0] == "X"
    await program.redis.aclose()


async def test_a_draft_budget_holds_completions_past_its_cap_and_names_the_month(clean_redis: str,
                                                                                 tmp_path: Path) -> None:
    clock = Clock(time.time() - 3_600)
    program = await program_for(clean_redis, TEST_RULES, clock)
    await history(program, clock)
    facts = await program.facts.read(2, clock.ms)
    # a completion costs ¥800 (500 + 300 points at ¥1): ¥1,000 a month pays the first and holds the other two
    draft = load_rules(variant(tmp_path, budget__referral_monthly_yen=1000))
    result = await compare(facts, program.rules, draft, embedded_sandbox, clock.ms)
    live, capped = result["live"], result["draft"]
    assert (live.referrals_completed, live.capped_months, live.held_for_budget) == (3, [], 0)
    assert capped.referrals_completed == 1 and capped.held_for_budget == 2
    assert capped.capped_months == [program.budget.month(clock.ms)]
    assert capped.milestone_payouts == 0 and capped.points_issued < live.points_issued
    await program.redis.aclose()
