"""Offer experiments ([[experiments]]): the file's checks, arms stable across restarts and processes (and kept
when the shares change), exact per-arm figures on a scripted program driven through the bot, the report's
intervals against known values, and the ending that moves everyone to the winner once, audited."""
from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from bot.infra.redis_conn import connect
from linesim.platform import new_user_id, text_of
from rewards import experiment_stats as st
from rewards.experiments import hashed_arm
from rewards.program import Program
from rewards.rules import RulesError, load_rules
from tests.support.harness import Bot, BotWith, converse
from tests.support.rules_helpers import Clock, program_for, variant

EXPERIMENT = """
[[experiments]]
id = "friend-500-vs-1000"
starts = 2020-01-01T00:00:00+09:00

[[experiments.arms]]
id = "control"
share = {control}

[[experiments.arms]]
id = "generous"
share = {generous}
referrer_points = 800
friend_points = 1000

[experiments.arms.friend_coupon]
yen_off = 1000
prefix = "FRIEND1K-"
"""
STAFF = "U" + "5" * 32
NO_QUIET = {"notifications__quiet_hours": '""'}


def rules_with(tmp_path: Path, control: int = 50, generous: int = 50) -> Path:
    return variant(tmp_path, EXPERIMENT.format(control=control, generous=generous), **NO_QUIET)


@pytest.mark.parametrize(("extra", "message"), [
    (EXPERIMENT.format(control=50, generous=40), "the arms' shares add up to 90, not 100 (control = 50, generous = 40)"),
    (EXPERIMENT.format(control=50, generous=50).replace('id = "generous"', 'id = "control"'), "already has the id"),
    (EXPERIMENT.format(control=50, generous=50).replace('prefix = "FRIEND1K-"', 'kind = "pool"'),
     'an arm\'s coupon is kind = "generated"'),
    (EXPERIMENT.format(control=50, generous=50) + EXPERIMENT.format(control=50, generous=50).replace(
        'id = "friend-500-vs-1000"', 'id = "later"').replace("FRIEND1K-", "LATER-"), "runs at the same time as 'friend-500-vs-1000'"),
    ('[[experiments]]\nid = "x"\nstarts = 2027-01-01T00:00:00\n[[experiments.arms]]\nid = "a"\nshare = 100\n',
     "at least two"),
    (EXPERIMENT.format(control=50, generous=50).replace("friend_points = 1000", "friend_point = 1000"),
     "an arm takes"),
])
def test_the_file_is_checked_at_load_with_a_clear_error(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(RulesError) as raised:
        load_rules(variant(tmp_path, extra))
    assert message in str(raised.value) and "experiments[" in str(raised.value), raised.value


def test_the_intervals_match_known_values() -> None:
    # Wilson: Newcombe (1998), Table I, method 3
    for (x, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                                (1, 29): (0.0061, 0.1718)}.items():
        got = st.wilson(x, n)
        assert got is not None and (round(got[0], 4), round(got[1], 4)) == (low, high), (x, n, got)
    assert st.wilson(0, 0) is None
    # exact Poisson (Garwood): the chi-square table's values
    for count, (low, high) in {0: (0.0, 3.689), 1: (0.0253, 5.572), 5: (1.6235, 11.6683), 10: (4.7954, 18.3904),
                               100: (81.3640, 121.6268)}.items():
        got = st.poisson_interval(count)
        assert abs(got[0] - low) < 6e-4 and abs(got[1] - high) < 6e-4, (count, got)
    assert st.k_factor(10, 20) == pytest.approx((0.5, 4.7954 / 20, 18.3904 / 20), abs=1e-4)
    # the delta method by hand: referrers (cost, friends) (100, 1), (300, 2), (0, 0), (250, 1): R = 650/4 = 162.5,
    # residuals -62.5, -25, 0, 87.5 → Σd² = 12187.5; Var = 12187.5 / (4·3·1²) = 1015.625; ±1.96·31.869 = ±62.462
    got = st.ratio_delta(4, 650, 4, 100**2 + 300**2 + 250**2, 100 + 600 + 250, 1 + 4 + 1)
    assert got == pytest.approx((162.5, 100.038, 224.962), abs=1e-3)
    assert st.ratio_delta(1, 100, 1, 1e4, 100, 1) is None  # one referrer: no variance to speak of
    # the two-proportion z-test by hand: 20/100 vs 35/100, pooled 0.275, se = √(0.275·0.725·0.02) = 0.063147
    z, p = st.two_proportions(20, 100, 35, 100) or (0, 0)
    assert round(z, 3) == 2.375 and round(p, 4) == 0.0175


async def test_arms_are_stable_across_restarts_and_processes_and_kept_when_the_shares_change(
        redis_url: str, tmp_path: Path) -> None:
    rules = load_rules(rules_with(tmp_path))
    experiment = rules.experiments[0]
    people = [new_user_id() for _ in range(40)]
    before = await program_for(redis_url, rules, Clock())
    first = {uid: (await before.experiments.terms_for(uid)).arm for uid in people}
    assert set(first.values()) == {"control", "generous"}
    # another process, another hash seed: the same arms from the hash alone, nothing read
    script = ("import sys; from rewards.rules import load_rules; from rewards.experiments import hashed_arm; "
              "e = load_rules(__import__('pathlib').Path(sys.argv[1])).experiments[0]; "
              "print(' '.join(hashed_arm(e, u).id for u in sys.argv[2:]))")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(rules_with(tmp_path)), *people,
                                                 stdout=asyncio.subprocess.PIPE,
                                                 env={**os.environ, "PYTHONHASHSEED": "12345"})
    out, _ = await child.communicate()
    assert child.returncode == 0 and out.decode().split() == [first[uid] for uid in people]
    # a restart (a new Program on the same Redis) with the shares changed to 10/90: the exposed keep their arm,
    # new referrers follow the new shares
    program = Program(connect(redis_url), load_rules(rules_with(tmp_path, 10, 90)), clock=Clock())
    assert {uid: (await program.experiments.terms_for(uid)).arm for uid in people} == first
    moved = [u for u in people if hashed_arm(program.rules.experiments[0], u).id != hashed_arm(experiment, u).id]
    assert moved, "some of 40 people sit between the old and the new edge"
    newcomers = [new_user_id() for _ in range(40)]
    assert [(await program.experiments.terms_for(u)).arm for u in newcomers] == \
           [hashed_arm(program.rules.experiments[0], u).id for u in newcomers]
    counted = await program.experiments.report()
    assert sum(a["referrers"] for a in counted[0]["arms"]) == 80  # each exposed once, however often asked
    for made in (before, program):
        await made.redis.aclose()


def people_in(bot: Bot, arm: str, count: int) -> list[str]:
    """New user ids the hash puts in `arm`."""
    experiment = bot.services.program.rules.experiments[0]
    found: list[str] = []
    while len(found) < count:
        uid = new_user_id()
        if hashed_arm(experiment, uid).id == arm:
            found.append(uid)
    return found


async def follow(bot: Bot, uid: str) -> None:
    await converse(bot.platform, uid, bot.platform.follow(uid))


async def invite(bot: Bot, uid: str) -> tuple[str, str]:
    """The invite card's words and the code in it."""
    said = text_of(await converse(bot.platform, uid, bot.platform.text(uid, "招待")))
    return said, await bot.services.program.invite_code(uid)


async def refer(bot: Bot, friend: str, code: str) -> str:
    await follow(bot, friend)
    return text_of(await converse(bot.platform, friend, bot.platform.text(friend, f"招待コード {code}")))


async def buy(bot: Bot, uid: str) -> None:
    status, _ = await bot.admin("POST", "/api/v1/conversions", {"order_id": f"o-{uid}", "user_id": uid,
                                                                "amount": 5000})
    assert status == 200


async def paid(bot: Bot, uid: str, op: str) -> int:
    return sum(int(e["delta"]) for e in await bot.services.program.ledger(uid) if e.get("op") == op)


async def arm_report(bot: Bot) -> dict[str, dict]:
    status, body = await bot.admin("GET", "/api/v1/experiments")
    assert status == 200
    (experiment,) = body["experiments"]  # type: ignore[index]
    return {a["id"]: a for a in experiment["arms"]} | {"": experiment}


async def test_a_scripted_program_has_exact_figures_per_arm_and_the_ending_moves_everyone_once(
        bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path), staff_user_ids=frozenset({STAFF}))
    c1, c2 = people_in(bot, "control", 2)
    g1, g2 = people_in(bot, "generous", 2)
    for uid in (c1, c2, g1, g2, STAFF):
        await follow(bot, uid)
    cards = {uid: await invite(bot, uid) for uid in (c1, c2, g1, g2)}
    await invite(bot, c1)  # shown twice
    shares = bot.services.program.shares  # a LIFF share, counted once a day under the sharer's arm
    assert await shares.record(g1, cards[g1][1]) and not await shares.record(g1, cards[g1][1])
    # the card states the arm's offer
    assert "500" in cards[c1][0] and "300" in cards[c1][0] and "1,000" not in cards[c1][0]
    assert "800" in cards[g1][0] and "1,000" in cards[g1][0]
    f1, f2, f3, f4, f5, f6 = (new_user_id() for _ in range(6))
    for friend, referrer in ((f1, c1), (f2, c1), (f3, c2)):
        answer = await refer(bot, friend, cards[referrer][1])
        assert "300" in answer and "FRIEND1K-" not in answer
    for friend, referrer in ((f4, g1), (f5, g1), (f6, g2)):
        answer = await refer(bot, friend, cards[referrer][1])
        assert "1,000" in answer and "FRIEND1K-" in answer, answer  # the arm's points and its own coupon
    assert re.match(r"FRIEND1K-", await bot.services.program.friend_coupon(f4) or "")
    for friend in (f1, f3, f4, f5):
        await buy(bot, friend)
    assert [await paid(bot, f, "referral:friend") for f in (f1, f3, f4, f5)] == [300, 300, 1000, 1000]
    assert await paid(bot, c1, f"referral:{f1}") == 500 and await paid(bot, g1, f"referral:{f4}") == 800

    arms = await arm_report(bot)
    control, generous = arms["control"], arms["generous"]
    figures = ("referrers", "invites_shown", "shares", "attributions", "completions", "points", "cost_yen")
    assert {k: control[k] for k in figures} == {"referrers": 2, "invites_shown": 3, "shares": 0, "attributions": 3,
                                                "completions": 2, "points": 1600, "cost_yen": 1600}
    assert {k: generous[k] for k in figures} == {"referrers": 2, "invites_shown": 2, "shares": 1, "attributions": 3,
                                                 "completions": 2, "points": 3600, "cost_yen": 6600}
    low, high = st.wilson(2, 3) or (0, 0)
    assert control["completion_rate"] == {"value": 0.6667, "low": round(low, 4), "high": round(high, 4)}
    assert generous["converting_referrers"]["value"] == 0.5  # g1 acquired friends, g2 none yet
    k_low, k_high = st.poisson_interval(2)
    assert generous["k_factor"] == {"value": 1.0, "low": round(k_low / 2, 4), "high": round(k_high / 2, 4)}
    assert control["cost_per_friend_yen"] == {"value": 800.0, "low": 800.0, "high": 800.0}
    # by hand: g1 cost 2·1000 coupons + 2·1800 points = 5600 for 2 friends, g2 1000 (a coupon) for none: R = 3300,
    # residuals ∓1000, Var = 2e6 / (2·1·1²) = 1e6, ±1.96·1000
    assert generous["cost_per_friend_yen"] == {"value": 3300.0, "low": 1340.0, "high": 5260.0}
    assert generous["vs_first"] is not None and generous["vs_first"]["significant"] is False
    staff_card = text_of(await converse(bot.platform, STAFF, bot.platform.text(STAFF, "今日の数字")))
    assert "🧪 friend-500-vs-1000: control 成立2/3・K1.00・¥800/人 / generous 成立2/3・K1.00・¥3,300/人（差はまだ不明）" \
        in staff_card, staff_card

    # the ending: refused with a clear answer when wrong, nothing changed
    assert (await bot.admin("POST", "/api/v1/experiments/nope/end", {"winner": "generous"}))[0] == 404
    status, body = await bot.admin("POST", "/api/v1/experiments/friend-500-vs-1000/end", {"winner": "bold"})
    assert status == 404 and body["error"]["code"] == "UNKNOWN_ARM"  # type: ignore[index]
    assert (await bot.admin("POST", "/api/v1/experiments/friend-500-vs-1000/end", {}))[0] == 400
    assert (await arm_report(bot))[""]["status"] == "running"
    # ended: once, audited once, however often asked
    for changed in (True, False):
        status, body = await bot.admin("POST", "/api/v1/experiments/friend-500-vs-1000/end", {"winner": "generous"})
        assert status == 200 and body["changed"] is changed and body["winner"] == "generous"  # type: ignore[index]
    status, body = await bot.admin("POST", "/api/v1/experiments/friend-500-vs-1000/end", {"winner": "control"})
    assert status == 409 and body["error"]["code"] == "ALREADY_ENDED"  # type: ignore[index]
    _, audit = await bot.admin("GET", "/api/v1/audit")
    ends = [e for e in audit["entries"] if e["what"] == "end_experiment"]  # type: ignore[index]
    assert len(ends) == 1 and ends[0]["winner"] == "generous" and ends[0]["experiment"] == "friend-500-vs-1000"
    # everyone now gets the winner: the control referrer's card, and a new friend of theirs
    assert "800" in (await invite(bot, c2))[0]
    f7 = new_user_id()
    assert "1,000" in await refer(bot, f7, cards[c2][1])
    await buy(bot, f7)
    assert await paid(bot, f7, "referral:friend") == 1000 and await paid(bot, c2, f"referral:{f7}") == 800
    # a referral attributed under control before the ending keeps its offer
    await buy(bot, f2)
    assert await paid(bot, f2, "referral:friend") == 300 and await paid(bot, c1, f"referral:{f2}") == 500
    after = await arm_report(bot)
    assert after[""]["status"] == "ended" and after[""]["ended"]["winner"] == "generous"
    # counted: f2's completion (attributed during the experiment); not f7, nor the card shown after the end
    assert (after["control"]["attributions"], after["control"]["completions"], after["control"]["invites_shown"]) \
        == (3, 3, 3)
    assert (after["generous"]["attributions"], after["generous"]["completions"]) == (3, 2)
    staff_card = text_of(await converse(bot.platform, STAFF, bot.platform.text(STAFF, "今日の数字")))
    assert "🏁 friend-500-vs-1000: generous に決定" in staff_card


async def test_every_way_a_referral_pays_pays_its_arm_with_the_same_op_ids(redis_url: str, tmp_path: Path) -> None:
    """Joining (trigger join), a reviewed order approved by staff, and a referrer who gives their share away:
    each pays the arm's amounts, under the op ids the program always used."""
    async def paid(program: Program, uid: str, op: str) -> int:
        return sum(int(e["delta"]) for e in await program.ledger(uid) if e.get("op") == op)

    async def referral(program: Program, arm: str, clock: Clock) -> tuple[str, str]:
        experiment = program.rules.experiments[0]
        referrer = new_user_id()
        while hashed_arm(experiment, referrer).id != arm:
            referrer = new_user_id()
        friend = new_user_id()
        for uid in (referrer, friend):
            await program.see(uid, "follow", clock.ms)
        assert (await program.attribute(friend, await program.invite_code(referrer), op=f"ev-{friend}")).ok
        return referrer, friend

    clock = Clock()
    on_join = await program_for(redis_url, variant(tmp_path, EXPERIMENT.format(control=50, generous=50),
                                                   referral__trigger='"join"'), clock)
    referrer, friend = await referral(on_join, "generous", clock)
    assert (await paid(on_join, friend, "referral:friend"), await paid(on_join, referrer, f"referral:{friend}")) \
        == (1000, 800)
    assert (await on_join.experiments.report())[0]["arms"][1]["completions"] == 1

    program = await program_for(redis_url, rules_with(tmp_path), clock)
    referrer, friend = await referral(program, "generous", clock)
    await program.record_purchase("own", referrer, 1000, fingerprint="fp-1")
    assert (await program.record_purchase("first", friend, 2000, fingerprint="fp-1")).answer["referral"]["status"] \
        == "review"
    await program.decide_referral(friend, "approve", "staff")
    assert (await paid(program, friend, "referral:friend"), await paid(program, referrer, f"referral:{friend}")) \
        == (1000, 800)

    giver, friend = await referral(program, "control", clock)
    await program.set_gift(giver, True)
    await program.record_purchase("gift-first", friend, 2000)
    assert (await paid(program, friend, "referral:friend"), await paid(program, friend, "referral:gift")) == (300, 500)
    arms = {a["id"]: a for a in (await program.experiments.report())[0]["arms"]}
    assert (arms["generous"]["completions"], arms["generous"]["points"]) == (1, 1800)
    assert (arms["control"]["completions"], arms["control"]["points"]) == (1, 800)  # the gift costs the same
    for made in (on_join, program):
        await made.redis.aclose()
