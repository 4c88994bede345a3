"""Referral rings ([rings], rewards/rings.py, rewards/ring_watch.py): the generated benchmark at a small size,
the honest look-alikes, and flag mode against hold mode on the real program (a real Redis)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from benchmarks.ring_program import DAY, HOUR, MINUTE, START, generate, store
from linesim.platform import new_user_id
from rewards import keys
from rewards.program import Program
from rewards.review import ReferralReview
from rewards.rings import Member, Settings, detect, flagged, measure
from tests.support.rules_helpers import Clock, program_for, variant
from tests.test_rules_engine import new_member, points

JST = ZoneInfo("Asia/Tokyo")
SETTINGS = Settings(mode="flag")


# ---- the detector on a generated program -------------------------------------------------------------------
def test_the_generated_benchmark_finds_the_planted_rings() -> None:
    program = generate(2_000, seed=1)
    groups = detect(program.members.values(), SETTINGS)
    result = measure(groups, set(program.planted), SETTINGS)
    assert result.precision >= 0.9 and result.recall >= 0.9, result
    caught = {program.planted[uid] for g in flagged(groups, SETTINGS) for uid in g.members if uid in program.planted}
    assert caught == {"star", "chain", "cycle", "burst", "tree", "coupon"}, "a ring shape went unseen"
    honest = {program.honest_kind.get(uid) for uid in result.flagged_honest}
    assert not honest & {"influencer", "office", "pickup"}, f"honest look-alikes flagged: {honest}"
    assert detect(program.members.values(), SETTINGS) == groups, "the same program gave other groups"


async def test_the_whole_graph_pass_on_redis_finds_what_the_detector_finds_fed_directly(clean_redis: str,
                                                                                      tmp_path: Path) -> None:
    generated = generate(1_000, seed=2)
    program = await program_for(clean_redis, variant(tmp_path, "", rings__mode='"flag"'), Clock(2_000_000_000))
    try:
        await store(program.redis, generated)
        found = await program.rings.scan()
    finally:
        await program.redis.aclose()
    direct = flagged(detect(generated.members.values(), program.rules.rings), program.rules.rings)
    assert found == direct and found, "the keys the bot keeps must tell the detector what the generator knew"


def _family(n: int) -> list[Member]:
    """A family at one address, referring each other days apart; the parents' card on one child's order."""
    people = [Member(uid=f"U{n}0", joined_at=START, marks=frozenset({"addr:home", "fp:parents"}))]
    for i in range(1, 4):
        at = START + i * 3 * DAY
        people.append(Member(uid=f"U{n}{i}", referrer=people[0].uid, referred_at=at, joined_at=at,
                             marks=frozenset({"addr:home", "fp:parents" if i == 1 else f"fp:{n}{i}"})))
    return people


def test_honest_look_alikes_are_grouped_but_not_flagged() -> None:
    family = _family(1)
    office = [Member(uid=f"U2{i:02d}", referrer="U200" if i else None, referred_at=START + i * 2 * DAY,
                     joined_at=START + i * 2 * DAY, marks=frozenset({"addr:office", f"fp:2{i}"})) for i in range(12)]
    star = Member(uid="U300", joined_at=START)
    post = START + 5 * DAY  # one post: 30 real friends within 20 minutes, two of whom churn after the coupon
    fans = [Member(uid=f"U3{i:02d}", referrer=star.uid, referred_at=post + i * 40_000, joined_at=post + i * 40_000,
                   marks=frozenset({f"fp:3{i}"})) for i in range(1, 31)]
    for fan in fans[:2]:
        fan.claimed_at, fan.blocked_at = fan.joined_at + HOUR, fan.joined_at + DAY
    groups = detect([*family, *office, star, *fans], SETTINGS)
    assert len(groups) == 3, "the family, the office and the influencer's post are each one group"
    assert not flagged(groups, SETTINGS), [(g.members[0], g.score, g.reasons) for g in groups]
    burst = next(g for g in groups if star.uid in g.members)
    assert burst.reasons["BURST"] == 30 and burst.score < 0.6


def test_a_ring_is_scored_with_its_reasons() -> None:
    boss = Member(uid="U900", joined_at=START, marks=frozenset({"fp:phone"}))
    fakes = []
    for i in range(1, 7):
        at = START + DAY + i * 3 * MINUTE
        fakes.append(Member(uid=f"U90{i}", referrer=boss.uid, referred_at=at, joined_at=at, claimed_at=at + MINUTE,
                            blocked_at=at + HOUR if i <= 4 else 0,
                            marks=frozenset({"fp:phone" if i <= 3 else f"fp:9{i}"})))
    [group] = flagged(detect([boss, *fakes], SETTINGS), SETTINGS)
    assert group.members == tuple(sorted(m.uid for m in [boss, *fakes]))
    assert group.reasons == {"JOIN_CLAIM_BLOCK": 4, "FINGERPRINT": 4, "BURST": 6}
    assert group.reason_text() == "JOIN_CLAIM_BLOCK 4, FINGERPRINT 4, BURST 6"
    assert group.score == pytest.approx(1.0 + 0.6 + 0.4)


# ---- flag mode and hold mode on the real program --------------------------------------------------------------
@pytest_asyncio.fixture
async def make(clean_redis: str, tmp_path: Path) -> AsyncIterator[Callable]:
    made: list[Program] = []

    async def factory(mode: str) -> tuple[Program, Clock]:
        clock = Clock(datetime(2026, 11, 20, 12, tzinfo=JST).timestamp())
        program = await program_for(clean_redis, variant(tmp_path, "", rings__mode=f'"{mode}"'), clock)
        made.append(program)
        return program, clock

    yield factory
    for program in made:
        await program.redis.aclose()


async def burst_of_friends(program: Program, clock: Clock, count: int = 6) -> tuple[str, list[str]]:
    """A referrer and `count` friends on their code within minutes (a burst), who then buy with one card
    (not the referrer's: the pairwise fingerprint check sees nothing)."""
    referrer = await new_member(program, clock)
    code = await program.invite_code(referrer)
    friends = []
    for _ in range(count):
        clock.advance(minutes=2)
        friend = await new_member(program, clock)
        assert (await program.attribute(friend, code, op=f"ev-{friend}")).ok
        friends.append(friend)
    return referrer, friends


async def paid_for(program: Program, referrer: str) -> list[str]:
    """The friends the referrer's ledger holds a referral reward for (op referral:{friend}), each entry once."""
    return sorted(e["op"].removeprefix("referral:") for e in await program.ledger(referrer)
                  if e.get("op", "").startswith("referral:U"))


async def buy_all(program: Program, clock: Clock, friends: list[str]) -> list[str]:
    statuses = []
    for n, friend in enumerate(friends):
        clock.advance(hours=1)
        purchase = await program.record_purchase(f"order-{n}", friend, 3000, fingerprint="card-9")
        statuses.append(purchase.answer["referral"]["status"])
    return statuses


async def test_hold_mode_holds_the_rings_referrals_and_pays_once_when_approved(make) -> None:
    program, clock = await make("hold")
    referrer, friends = await burst_of_friends(program, clock)
    # a burst alone is not enough (score 0.4); the shared card grows with each order: at the fourth the group
    # scores 1.0 (BURST 6, FINGERPRINT 4) and the referrals still to complete wait for staff
    assert await buy_all(program, clock, friends) == ["completed"] * 3 + ["review"] * 3
    assert await paid_for(program, referrer) == sorted(friends[:3])
    queue = await ReferralReview(program).referrals("review")
    by_friend = {r["friend"]: r for r in queue}
    assert set(by_friend) == set(friends), "the held ones and the paid ones of the group are all in the queue"
    held = by_friend[friends[3]]
    assert held["status"] == "review" and held["review_reason"] == "RING"
    assert held["ring"] == f"ring:{min([referrer, *friends])}" and float(held["ring_score"]) >= 1.0
    assert held["ring_reasons"] == "FINGERPRINT 6, BURST 6"  # as the last order's check found it

    review = ReferralReview(program)
    first = await review.approve(friends[3], "staff")
    again = await review.approve(friends[3], "staff")
    assert first.changed and first.paid_referrer == referrer
    assert not again.changed and again.paid_referrer is None
    assert await paid_for(program, referrer) == sorted(friends[:4])
    assert (await points(program, friends[3]))[0] >= program.rules.friend_points
    await program.rings.scan()  # the whole-graph pass finds the group again: the approved one stays cleared
    assert friends[3] not in {r["friend"] for r in await review.referrals("review")}
    [group] = await program.rings.groups()
    assert group["members"] == sorted([referrer, *friends]) and group["mode"] == "hold"


async def test_flag_mode_pays_as_usual_and_lists_the_group_for_review(make) -> None:
    program, clock = await make("flag")
    referrer, friends = await burst_of_friends(program, clock)
    assert await buy_all(program, clock, friends) == ["completed"] * 6
    assert await paid_for(program, referrer) == sorted(friends)
    review = ReferralReview(program)
    queue = await review.referrals("review")
    assert {r["friend"] for r in queue} == set(friends)
    assert all(r["status"] == "completed" and r["ring_reasons"] == "FINGERPRINT 6, BURST 6" for r in queue)
    assert await review.flagged_only(friends[0])
    assert await review.dismiss_ring(friends[0], "staff")  # staff looked: honest after all
    assert friends[0] not in {r["friend"] for r in await review.referrals("review")}
    assert await paid_for(program, referrer) == sorted(friends)


async def test_off_mode_keeps_nothing_and_flags_nothing(make) -> None:
    program, clock = await make("off")
    _, friends = await burst_of_friends(program, clock)
    assert await buy_all(program, clock, friends) == ["completed"] * 6
    assert await ReferralReview(program).referrals("review") == []
    assert await program.rings.scan_due() is None
    assert not await program.redis.keys("shokai:rings:*")


async def test_the_clock_pass_finds_join_claim_block_that_no_order_shows(make) -> None:
    """Fake friends who take the welcome coupon and block never buy: only the whole-graph pass sees them."""
    program, clock = await make("flag")
    referrer = await new_member(program, clock)
    code = await program.invite_code(referrer)
    friends = []
    for _ in range(4):
        clock.advance(hours=3)  # hours apart: no burst
        friend = await new_member(program, clock)
        assert (await program.attribute(friend, code, op=f"ev-{friend}")).ok
        await program.redis.zadd(keys.coupon_order(friend), {"t": clock.ms})  # the welcome coupon, taken
        friends.append(friend)
    assert await program.rings.scan_due() is not None and await ReferralReview(program).referrals("review") == []
    clock.advance(minutes=30)
    for friend in friends:
        await program.see(friend, "unfollow", clock.ms)
    assert await program.rings.scan_due() is None, "the pass runs every every_minutes"
    clock.advance(minutes=31)
    [group] = await program.rings.scan_due() or []
    assert group.reasons == {"JOIN_CLAIM_BLOCK": 4} and group.members == tuple(sorted([referrer, *friends]))
    assert {r["friend"] for r in await ReferralReview(program).referrals("review")} == set(friends)


# ---- the signals a Shopify order brings, and the review queue over the API ------------------------------------
async def test_a_shopify_order_keeps_only_hashes_and_a_coupon_used_by_someone_else(bot_with, tmp_path: Path) -> None:
    from tests.test_account_link import link, member
    from tests.test_admin_api import refer as refer_in_chat
    from tests.test_shopify_webhooks import COUPON, NO_QUIET, SECRET, SHOP, order, send

    bot = await bot_with(shopify_webhook_secret=SECRET, shop_link_url=SHOP,
                         rewards_config=variant(tmp_path, COUPON, rings__mode='"flag"', **NO_QUIET))
    referrer, friend = new_user_id(), new_user_id()
    await refer_in_chat(bot, referrer, friend)
    await link(bot, referrer, "6101")
    code = (await member(bot, friend))["friend_coupon"]["code"]
    home = {"first_name": "花子", "last_name": "山田", "address1": "千代田1-1", "city": "千代田区",
            "province": "東京都", "zip": "100-0001", "country_code": "JP"}
    # the referrer's own account pays with the friend's welcome coupon: the order is the referrer's
    await send(bot, "orders/paid", order(customer_id=6101, yen=3000, discount_codes=(code,), discount=500,
                                         shipping_address=home))
    redis = bot.services.redis
    marks = {m.decode() for m in await redis.smembers(keys.ring_marks(referrer))}
    assert {m.split(":")[0] for m in marks} == {"addr", "cust", "used"} and f"used:{friend}" in marks
    for key in [keys.ring_marks(referrer), *[keys.ring_mark(m) for m in marks if not m.startswith("used:")]]:
        stored = " ".join(v.decode() for v in await redis.smembers(key))
        assert "6101" not in key + stored and "千代田" not in key + stored and "100-0001" not in key + stored
    groups = detect([m for m, _ in (await bot.services.program.rings._load([referrer, friend])).values()], SETTINGS)
    assert [g.reasons for g in groups] == [{"COUPON": 2}]
    await bot.services.program.rings.forget(referrer)  # an erasure: no mark, no index names them
    assert not await redis.exists(keys.ring_marks(referrer))
    for mark in marks - {f"used:{friend}"}:
        assert not await redis.sismember(keys.ring_mark(mark), referrer)


async def test_the_review_queue_over_the_api_shows_the_ring_and_approving_a_flag_clears_it(
        bot_with, tmp_path: Path) -> None:
    from tests.test_staff import STAFF, ja, postbacks, say, tap
    from tests.test_staff import body as text
    bot = await bot_with(rewards_config=variant(tmp_path, "", rings__mode='"flag"'), staff_user_ids=frozenset({STAFF}))
    program = bot.services.program
    clock = Clock(program.clock())
    program.clock = clock
    referrer, friends = await burst_of_friends(program, clock)
    await buy_all(program, clock, friends)
    status, body = await bot.admin("GET", "/api/v1/referrals?status=review")
    assert status == 200 and body["total"] == 6
    ring = body["referrals"][0]["ring"]
    assert ring["reasons"] == ["FINGERPRINT 6", "BURST 6"] and ring["score"] >= 1.0 and not ring["cleared"]
    assert body["referrals"][0]["status"] == "completed"
    status, answer = await bot.admin("POST", f"/api/v1/referrals/{friends[0]}/approve", {"reason": "family"})
    assert status == 200 and answer["ring_cleared"] and answer["status"] == "completed"
    status, body = await bot.admin("GET", "/api/v1/referrals?status=review")
    assert body["total"] == 5

    # the same queue in chat, for staff: the ring's score and reasons under each referral; 承認 clears the flag
    listed = await say(bot, STAFF, "審査待ち")
    assert ja(bot, "staff_review_ring_line", score=ring["score"], reasons="FINGERPRINT 6, BURST 6",
              status="completed") in text(listed)
    approve = postbacks(listed)[0]
    shown_first = next(r["friend_id"] for r in body["referrals"])
    assert text(await tap(bot, STAFF, approve["data"])) == ja(bot, "staff_review_ring_cleared", friend=shown_first)
    assert (await bot.admin("GET", "/api/v1/referrals?status=review"))[1]["total"] == 4
    assert await paid_for(program, referrer) == sorted(friends), "clearing a flag pays nobody again"
