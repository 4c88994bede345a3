"""Every rule type of the rules file, applied by the program against a real Redis: tables of cases."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from linesim.platform import new_user_id, text_of
from rewards.program import Program
from tests.support.rules_helpers import Clock, program_for, variant

JST = ZoneInfo("Asia/Tokyo")
DAY = 86_400_000

ProgramFactory = Callable[..., "Program"]


@pytest_asyncio.fixture
async def make(clean_redis: str, tmp_path: Path) -> AsyncIterator[Callable]:
    """make(extra="", **settings) -> (program, clock): the default rules with changes, on a clean Redis."""
    made: list[Program] = []

    async def factory(extra: str = "", start: datetime | None = None, **settings: object) -> tuple[Program, Clock]:
        clock = Clock(start.timestamp() if start else datetime(2026, 11, 20, 12, tzinfo=JST).timestamp())
        program = await program_for(clean_redis, variant(tmp_path, extra, **settings), clock)
        made.append(program)
        return program, clock

    yield factory
    for program in made:
        await program.redis.aclose()


async def new_member(program: Program, clock: Clock, via: str = "follow") -> str:
    uid = new_user_id()
    await program.see(uid, via, clock.ms)
    return uid


async def points(program: Program, uid: str) -> tuple[int, int]:
    view = await program.member(uid)
    assert view is not None
    return view.points, view.pending_points


async def refer(program: Program, clock: Clock) -> tuple[str, str]:
    """A referrer and a friend attributed to them (pending)."""
    referrer = await new_member(program, clock)
    friend = await new_member(program, clock)
    code = await program.invite_code(referrer)
    outcome = await program.attribute(friend, code, op=f"ev-{friend}")
    assert outcome.ok, outcome
    return referrer, friend


async def assert_ledger_adds_up(program: Program, uid: str) -> None:
    """The balance is rebuilt from the ledger alone."""
    view = await program.member(uid)
    entries = await program.ledger(uid)
    assert view is not None
    assert sum(e["avail"] for e in entries) == view.points
    assert sum(e["pend"] for e in entries) == view.pending_points


# ---- earning rules ---------------------------------------------------------------------
@pytest.mark.parametrize("amount, rounding, minimum, expected", [
    (3050, '"floor"', 0, 30), (3050, '"ceil"', 0, 31), (3050, '"round"', 0, 31), (3049, '"round"', 0, 30),
    (99, '"floor"', 0, 0), (999, '"floor"', 1000, 0), (1000, '"floor"', 1000, 10), (0, '"floor"', 0, 0),
])
async def test_purchase_points(make, amount, rounding, minimum, expected) -> None:
    program, clock = await make(earn__purchase__rounding=rounding, earn__purchase__minimum_order=minimum)
    uid = await new_member(program, clock)
    answer = (await program.record_purchase(f"o-{amount}", uid, amount)).answer
    assert answer["purchase_points"] == expected
    assert (await points(program, uid))[0] == expected


@pytest.mark.parametrize("caps, orders, expected", [
    ("{ per_day = 50 }", [3000, 3000], 50),  # 30 + 20 (capped)
    ("{ per_month = 70 }", [3000, 3000, 3000], 70),
    ("{ lifetime = 40 }", [3000, 3000], 40),
    ("{ per_day = 0, per_month = 0, lifetime = 0 }", [3000, 3000], 60),
])
async def test_purchase_caps(make, caps, orders, expected) -> None:
    program, clock = await make(earn__purchase__caps=caps)
    uid = await new_member(program, clock)
    for i, amount in enumerate(orders):
        await program.record_purchase(f"o{i}", uid, amount)
    assert (await points(program, uid))[0] == expected
    await assert_ledger_adds_up(program, uid)


async def test_daily_caps_reset_the_next_day_in_the_shops_time_zone(make) -> None:
    program, clock = await make(earn__purchase__caps="{ per_day = 30 }")
    uid = await new_member(program, clock)
    await program.record_purchase("a", uid, 3000)
    await program.record_purchase("b", uid, 3000)
    clock.advance(days=1)
    await program.record_purchase("c", uid, 3000)
    assert (await points(program, uid))[0] == 60


async def test_signup_once_and_first_purchase_bonus(make) -> None:
    program, clock = await make(earn__first_purchase__points=200)
    uid = await new_member(program, clock)
    assert await program.welcome_points(uid, clock.ms) == 100
    assert await program.welcome_points(uid, clock.ms) == 0
    await program.record_purchase("first", uid, 1000)
    await program.record_purchase("second", uid, 1000)
    assert (await points(program, uid))[0] == 100 + 10 + 200 + 10


async def test_profile_completion_pays_once(make) -> None:
    program, clock = await make()
    uid = await new_member(program, clock)
    await program.set_language(uid, "ja")
    assert (await points(program, uid))[0] == 0
    assert await program.set_birthday(uid, 5, 12)
    assert not await program.set_birthday(uid, 6, 1), "a birthday is set once"
    await program.set_language(uid, "en")
    assert (await points(program, uid))[0] == 50


async def test_birthday_points_once_a_year_in_the_birthday_month(make) -> None:
    program, clock = await make(earn__profile__points=0)
    now_month = await new_member(program, clock)
    later = await new_member(program, clock)
    assert await program.set_birthday(now_month, 11, 30)  # November, set in November: paid now
    assert await program.set_birthday(later, 12, 24)
    assert (await points(program, now_month))[0] == 200 and (await points(program, later))[0] == 0
    await program.birthdays_due()
    assert (await points(program, now_month))[0] == 200, "twice in one year"
    clock.advance(days=15)  # December
    await program.birthdays_due()
    await program.birthdays_due()
    assert (await points(program, later))[0] == 200
    clock.advance(days=365)
    await program.birthdays_due()
    assert (await points(program, later))[0] == 400


async def test_custom_events_pay_once_per_event_within_caps(make) -> None:
    program, clock = await make()
    uid = await new_member(program, clock)
    assert await program.custom_event(uid, "review", "r1") == (True, 50)
    assert await program.custom_event(uid, "review", "r1") == (False, 50)
    assert await program.custom_event(uid, "review", "r2") == (True, 0)  # one review a day pays
    clock.advance(days=1)
    assert await program.custom_event(uid, "review", "r3") == (True, 50)
    with pytest.raises(Exception, match="no event"):
        await program.custom_event(uid, "tweet", "t1")


# ---- referrals -------------------------------------------------------------------------
@pytest.mark.parametrize("minimum, first_order, completes", [(0, 100, True), (5000, 4999, False),
                                                              (5000, 5000, True)])
async def test_referral_minimum_first_order(make, minimum, first_order, completes) -> None:
    program, clock = await make(referral__minimum_order=minimum)
    referrer, friend = await refer(program, clock)
    purchase = await program.record_purchase("o1", friend, first_order)
    assert (purchase.answer["referral"]["status"] == "completed") is completes
    assert (await points(program, referrer))[0] == (500 if completes else 0)


async def test_referral_on_join_pays_both_at_once(make) -> None:
    program, clock = await make(referral__trigger='"join"')
    referrer, friend = await refer(program, clock)
    assert (await points(program, referrer))[0] == 500
    assert (await points(program, friend))[0] == 300
    assert (await program.member(referrer)).referrals.completed == 1


async def test_a_hold_keeps_points_pending_until_it_ends(make) -> None:
    program, clock = await make(referral__hold_days=14)
    referrer, friend = await refer(program, clock)
    await program.record_purchase("o1", friend, 1000)
    assert await points(program, referrer) == (0, 500)
    assert await points(program, friend) == (10, 300)
    assert await program.spend(referrer, "claim-1", 100, "reward:x") == (-1, 0), "held points cannot be spent"
    clock.advance(days=13)
    await program.maintain_due()
    assert await points(program, referrer) == (0, 500)
    clock.advance(days=1, hours=1)
    await program.maintain_due()
    await program.maintain_due()  # idempotent
    assert await points(program, referrer) == (500, 0)
    assert await points(program, friend) == (310, 0)
    await assert_ledger_adds_up(program, referrer)


@pytest.mark.parametrize("how", ["block", "refund"])
async def test_a_referral_voided_within_the_hold_pays_nobody(make, how) -> None:
    program, clock = await make(referral__hold_days=14)
    referrer, friend = await refer(program, clock)
    await program.record_purchase("o1", friend, 1000)
    clock.advance(days=3)
    if how == "block":
        await program.see(friend, "unfollow", clock.ms)
    else:
        assert await program.refund("o1") == ("OK", 10 + 300)
    assert await points(program, referrer) == (0, 0)
    assert (await points(program, friend))[1] == 0
    view = await program.member(referrer)
    assert view.referrals.completed == 0
    clock.advance(days=20)
    await program.maintain_due()
    assert await points(program, referrer) == (0, 0)
    await assert_ledger_adds_up(program, referrer)
    await assert_ledger_adds_up(program, friend)


async def test_blocking_after_the_hold_voids_nothing(make) -> None:
    program, clock = await make(referral__hold_days=7)
    referrer, friend = await refer(program, clock)
    await program.record_purchase("o1", friend, 1000)
    clock.advance(days=8)
    await program.maintain_due()
    await program.see(friend, "unfollow", clock.ms)
    assert await points(program, referrer) == (500, 0)


async def test_milestones_escalate_and_reverse_with_their_referral(make) -> None:
    extra = "[[referral.milestones]]\ncount = 1\npoints = 1000\n"
    program, clock = await make(extra=extra)
    referrer = await new_member(program, clock)
    code = await program.invite_code(referrer)
    friends = []
    for i in range(3):
        friend = await new_member(program, clock)
        assert (await program.attribute(friend, code, op=f"e{i}")).ok
        await program.record_purchase(f"o{i}", friend, 1000)
        friends.append(friend)
    assert (await points(program, referrer))[0] == 3 * 500 + 1000 + 500  # 1st: 1000, 3rd: 500
    await program.refund("o2")  # the 3rd referral goes, and its milestone with it
    assert (await points(program, referrer))[0] == 2 * 500 + 1000
    await assert_ledger_adds_up(program, referrer)


async def test_monthly_cap_on_rewarded_referrals(make) -> None:
    program, clock = await make(referral__monthly_cap=2)
    referrer = await new_member(program, clock)
    code = await program.invite_code(referrer)
    for i in range(3):
        friend = await new_member(program, clock)
        assert (await program.attribute(friend, code, op=f"e{i}")).ok
        await program.record_purchase(f"o{i}", friend, 1000)
    assert (await points(program, referrer))[0] == 2 * 500 + 500  # two paid; the 3rd milestone still counts
    assert (await program.member(referrer)).referrals.completed == 3


async def test_a_referrer_may_give_their_reward_to_the_friend(make) -> None:
    program, clock = await make()
    referrer, friend = await refer(program, clock)
    await program.set_gift(referrer, True)
    await program.record_purchase("o1", friend, 1000)
    assert (await points(program, referrer))[0] == 0
    assert (await points(program, friend))[0] == 10 + 300 + 500
    assert (await program.member(referrer)).referrals.completed == 1
    await program.refund("o1")
    assert (await points(program, friend))[0] == 0


async def test_gifting_is_off_when_the_rules_say_so(make) -> None:
    program, clock = await make(referral__allow_gift="false")
    uid = await new_member(program, clock)
    with pytest.raises(Exception, match="do not let"):
        await program.set_gift(uid, True)


# ---- campaigns and tiers ---------------------------------------------------------------
CAMPAIGN = """
[[campaigns]]
name = "{name}"
starts = 2026-11-01T00:00:00+09:00
ends = 2026-12-01T00:00:00+09:00
rules = {rules}
multiplier = {multiplier}
bonus = {bonus}
stackable = {stackable}
"""


@pytest.mark.parametrize("campaigns, expected", [
    ([("x2", '["purchase"]', 2.0, 0, "false")], 60),
    ([("x2", '["purchase"]', 2.0, 0, "false"), ("x3", '["purchase"]', 3.0, 0, "false")], 90),  # strongest only
    ([("x2", '["purchase"]', 2.0, 0, "true"), ("x3", '["purchase"]', 3.0, 0, "true")], 180),  # they multiply
    ([("b", '["purchase"]', 1.0, 25, "false")], 55),
    ([("other", '["signup"]', 5.0, 0, "false")], 30),
])
async def test_campaigns(make, campaigns, expected) -> None:
    extra = "".join(CAMPAIGN.format(name=n, rules=r, multiplier=m, bonus=b, stackable=s) for n, r, m, b, s in campaigns)
    program, clock = await make(extra=extra)
    uid = await new_member(program, clock)
    await program.record_purchase("o1", uid, 3000)
    assert (await points(program, uid))[0] == expected


async def test_a_campaign_outside_its_dates_does_nothing(make) -> None:
    extra = CAMPAIGN.format(name="x2", rules='["purchase"]', multiplier=2.0, bonus=0, stackable="false")
    program, clock = await make(extra=extra, start=datetime(2026, 12, 1, 0, 0, tzinfo=JST))
    uid = await new_member(program, clock)
    await program.record_purchase("o1", uid, 3000)
    assert (await points(program, uid))[0] == 30


async def test_tier_multiplier_and_progress(make) -> None:
    program, clock = await make()
    uid = await new_member(program, clock)
    view = await program.member(uid)
    assert (view.tier, view.next_tier, view.to_next_tier) == ("bronze", "silver", 1000)
    await program.adjust(uid, 5000, "welcome gift", "test", "op-1")
    view = await program.member(uid)
    assert (view.tier, view.next_tier, view.to_next_tier) == ("gold", "platinum", 15000)
    await program.record_purchase("o1", uid, 10000)  # gold: 1.5×
    assert (await points(program, uid))[0] == 5000 + 150


async def test_rolling_tiers_go_down_only_when_the_rules_say_so(make) -> None:
    for downgrade, tier_after in (('"window"', "bronze"), ('"never"', "silver")):
        program, clock = await make(tiers__window='"rolling_12_months"', tiers__downgrade=downgrade)
        uid = await new_member(program, clock)
        await program.adjust(uid, 1200, "x", "test", "op-1")
        assert (await program.member(uid)).tier == "silver"
        clock.advance(days=400)
        assert (await program.member(uid)).tier == tier_after


async def test_tiers_by_yen_spent(make) -> None:
    program, clock = await make(tiers__basis='"yen"')
    uid = await new_member(program, clock)
    await program.record_purchase("o1", uid, 1500)
    assert (await program.member(uid)).tier == "silver"
    await program.refund("o1")
    view = await program.member(uid)
    assert (view.tier, view.to_next_tier) == ("silver", 5000)  # the default downgrade policy is "never"


# ---- expiry ------------------------------------------------------------------------------
async def test_points_expire_oldest_first_and_spending_takes_the_oldest(make) -> None:
    program, clock = await make(points__expire_after_months=1)
    uid = await new_member(program, clock)
    await program.adjust(uid, 100, "old", "test", "a")  # adjustments are lots like any earning
    clock.advance(days=20)
    await program.adjust(uid, 100, "new", "test", "b")
    assert await program.spend(uid, "claim-1", 60, "reward:x") == (1, 140)  # from the old lot
    clock.advance(days=15)  # the old lot (40 left) is past its month
    await program.maintain_due()
    await program.maintain_due()
    assert (await points(program, uid))[0] == 100
    clock.advance(days=30)
    await program.maintain_due()
    assert (await points(program, uid))[0] == 0
    await assert_ledger_adds_up(program, uid)
    assert (await program.stats())["points_expired"] == 140


async def test_inactivity_expiry_takes_everything_after_a_quiet_spell(make) -> None:
    program, clock = await make(points__expiry='"inactivity"', points__expire_after_months=2)
    uid = await new_member(program, clock)
    await program.record_purchase("o1", uid, 5000)
    clock.advance(days=50)
    await program.record_purchase("o2", uid, 5000)  # activity resets the clock
    clock.advance(days=50)
    await program.maintain_due()
    assert (await points(program, uid))[0] == 100
    clock.advance(days=20)
    await program.maintain_due()
    assert (await points(program, uid))[0] == 0


async def test_expiry_warnings_once_per_expiry_date(make) -> None:
    program, clock = await make(points__expire_after_months=1, points__warning_days=7)
    uid = await new_member(program, clock)
    await program.adjust(uid, 100, "x", "test", "a")
    assert await program.expiring_soon() == []
    clock.advance(days=25)
    [(who, amount, when)] = await program.expiring_soon()
    assert (who, amount) == (uid, 100)
    await program.mark_warned(uid, when)
    assert await program.expiring_soon() == []


# ---- refunds, debt, adjustments ---------------------------------------------------------
async def test_a_refund_reverses_multiplied_points_and_may_leave_a_debt(make) -> None:
    extra = CAMPAIGN.format(name="x2", rules='["purchase"]', multiplier=2.0, bonus=0, stackable="false")
    program, clock = await make(extra=extra)
    uid = await new_member(program, clock)
    await program.record_purchase("o1", uid, 10000)
    assert (await points(program, uid))[0] == 200
    assert await program.spend(uid, "claim-1", 150, "reward:x") == (1, 50)
    assert await program.refund("o1") == ("OK", 200)
    assert await program.refund("o1") == ("ALREADY_REFUNDED", 0)
    view = await program.member(uid)
    assert (view.points, view.debt) == (-150, 150)
    assert await program.spend(uid, "claim-2", 1, "reward:x") == (-1, -150), "no claims while in debt"
    await program.record_purchase("o2", uid, 20000)  # 400 (doubled): earning pays the debt back first
    view = await program.member(uid)
    assert (view.points, view.debt) == (250, 0)
    await assert_ledger_adds_up(program, uid)


async def test_without_blocking_claims_what_a_refund_cannot_take_back_is_forgiven(make) -> None:
    program, clock = await make(points__block_claims_in_debt="false")
    uid = await new_member(program, clock)
    await program.record_purchase("o1", uid, 10000)
    assert await program.spend(uid, "claim-1", 80, "reward:x") == (1, 20)
    assert await program.refund("o1") == ("OK", 20)
    view = await program.member(uid)
    assert (view.points, view.debt) == (0, 0)
    [*_, refund] = await program.ledger(uid)
    assert refund["written_off"] == 80
    await assert_ledger_adds_up(program, uid)


async def test_adjustments_are_in_the_ledger_with_the_reason_and_staff(make) -> None:
    program, clock = await make()
    uid = await new_member(program, clock)
    assert await program.adjust(uid, 300, "apology", "staff-7", "adj-1") == (True, 300)
    assert await program.adjust(uid, 300, "apology", "staff-7", "adj-1") == (False, 300)
    assert await program.adjust(uid, -500, "correction", "staff-7", "adj-2") == (True, -200)
    entries = await program.ledger(uid)
    assert [(e["delta"], e["note"], e["rule"]) for e in entries] == [(300, "apology", "staff:staff-7"),
                                                                       (-500, "correction", "staff:staff-7")]
    await assert_ledger_adds_up(program, uid)


# ---- in chat ---------------------------------------------------------------------------
async def test_a_referrer_turns_gifting_on_in_chat_and_sees_pending_points(clean_redis, platform, tmp_path) -> None:
    from handlers.gift import GiftChoice
    from tests.support.harness import converse, make_settings, pack, start_bot

    rules = variant(tmp_path, referral__hold_days=7)
    bot = await start_bot(make_settings(clean_redis, platform, rewards_config=rules), platform)
    try:
        a = new_user_id()
        await converse(platform, a, platform.follow(a))
        said = await converse(platform, a, platform.text(a, "相手に譲る"))
        [choice] = [q["action"] for q in said[-1]["quickReply"]["items"] if q["action"]["type"] == "postback"]
        assert choice["data"] == pack(GiftChoice(True))
        said = await converse(platform, a, platform.postback(a, choice["data"]))
        assert "友だちに譲ります" in said[-1]["text"]
        status, member = await bot.admin("GET", f"/api/v1/members/{a}")
        assert member["gift_referral_reward"] is True
        await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-a", "user_id": a, "amount": 1000})
        said = await converse(platform, a, platform.text(a, "ポイント"))
        assert "現在のポイント：110 pt" in text_of(said)  # the member card's altText
    finally:
        await bot.http.close()
        await bot.runner.cleanup()
    assert platform.violations == []


async def test_a_lot_with_nothing_left_in_the_queue_cannot_hang_a_spend(make) -> None:
    """Found by the ledger benchmark: take() looped for ever inside Redis on such a lot."""
    import asyncio

    from rewards import keys, ledger_codec

    program, clock = await make()
    uid = await new_member(program, clock)
    await program.adjust(uid, 100, "a", "test", "a")
    await program.adjust(uid, 100, "b", "test", "b")
    lot_id = min(ledger_codec.split_ops(await program.redis.hgetall(keys.ops(uid))).lots)
    field = ledger_codec.entry_field(lot_id)
    lot, entry = ledger_codec.split_entry(await program.redis.hget(keys.ops(uid), field))
    assert lot is not None
    emptied = b"|" + lot.split(b"|")[1] + b";" + entry
    await program.redis.hset(keys.ops(uid), field, emptied)  # emptied, still queued
    written, _ = await asyncio.wait_for(program.spend(uid, "claim-1", 50, "reward:x"), 10)
    assert written == 1
    queue = ledger_codec.queued(await program.redis.hget(keys.ops(uid), ledger_codec.QUEUE))
    assert lot_id not in queue and queue  # dropped from the queue; the next lot still has points
