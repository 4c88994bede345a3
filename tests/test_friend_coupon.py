"""The referred friend's welcome coupon ([referral.friend_coupon]): given once per referral and shown at once,
through a crash between the attribution and the grant and a re-run of the event; never on a refused code; an
empty pool owes it until codes come; its code leads back to the friend. And the friend's own points notice."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router
from bot.infra import keys as infra_keys
from bot.infra.metrics import Metrics
from bot.intake.stream import partition_of
from bot.intake.worker import Worker
from handlers import build_router
from linesim.platform import Platform, new_user_id, text_of
from rewards import codes, friend_coupons
from rewards import keys as rewards_keys
from rewards.friend_coupons import FriendCoupons, new_friend_code
from rewards.rules import FRIEND_COUPON_POOL, RulesError, load_rules
from tests.support.harness import Bot, BotWith, converse, make_settings, start_bot
from tests.support.rules_helpers import Clock, program_for, variant

GENERATED = """
[referral.friend_coupon]
kind = "generated"
yen_off = 500
minimum_order = 3000
valid_days = 30
prefix = "WELCOME-"
"""
POOL = """
[referral.friend_coupon]
kind = "pool"
percent_off = 10
"""
CODE = re.compile(r"WELCOME-[" + codes.ALPHABET + r"]{5}-[" + codes.ALPHABET + r"]{5}")
NO_QUIET = {"notifications__quiet_hours": '""'}  # notices go out at once, whatever the hour the suite runs


def rules_with(tmp_path: Path, extra: str = GENERATED, **settings: object) -> Path:
    return variant(tmp_path, extra, **{**NO_QUIET, **settings})


async def joined(bot: Bot) -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    return uid


def flex_cards(said: list[dict]) -> list[dict]:
    return [m for m in said if m.get("type") == "flex"]


def coupon_card_code(said: list[dict]) -> str:
    """The code on the welcome coupon card, checked to be what its copy button copies."""
    cards = [m for m in flex_cards(said) if "WELCOME-" in str(m) or "clipboard" in str(m)]
    assert len(cards) == 1, said
    bubble = cards[0]["contents"]
    copy = next(b["action"] for b in bubble["footer"]["contents"] if b["action"]["type"] == "clipboard")
    return copy["clipboardText"]


async def stat(bot: Bot, name: str) -> int:
    _, stats = await bot.admin("GET", "/api/v1/stats")
    return int(stats.get(name, 0))


async def coupon_field(bot: Bot, uid: str) -> dict | None:
    status, member = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200
    return member["friend_coupon"]


def pushes_to(platform: Platform, uid: str, since: int = 0) -> list[dict]:
    return [m for c in platform.calls[since:] if c.endpoint == "push" and c.status == 200 and uid in c.to
            for m in c.body["messages"]]


async def test_the_coupon_is_given_once_shown_at_once_and_leads_back_to_the_friend(bot_with: BotWith,
                                                                                   tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path))
    platform, program = bot.platform, bot.services.program
    referrer, friend = await joined(bot), await joined(bot)
    invite = await program.invite_code(referrer)
    said = await converse(platform, friend, platform.text(friend, f"招待コード {invite}"))
    code = coupon_card_code(said)
    assert CODE.fullmatch(code), code
    answer = text_of(said)
    assert "3,000円以上" in answer and "有効期限" in answer and "初回のお買い物500円引き" in answer
    assert said[-1]["quickReply"]["items"][0]["action"]["text"] == "クーポン"  # tappable, coupons first
    # kept: the API, the program's names the next issue and the reminder read, the coupons view
    assert await coupon_field(bot, friend) == {"code": code}
    assert await coupon_field(bot, referrer) is None
    assert await program.friend_coupon(friend) == code and await program.friend_coupon(referrer) is None
    assert await program.friend_by_coupon(code) == friend
    typed = code.lower().translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})  # full width, lower case
    assert await program.friend_by_coupon(f" {typed} ") == friend
    assert await program.friend_by_coupon("WELCOME-ZZZZZ-ZZZZZ") is None
    view = await converse(platform, friend, platform.text(friend, "クーポン"))
    assert code in text_of(view) and "初回のお買い物500円引き" in text_of(view)
    # the referral itself is as before: pending, the referrer told
    _, member = await bot.admin("GET", f"/api/v1/members/{referrer}")
    assert member["referrals"] == {"invited": 1, "pending": 1, "completed": 0}
    assert await stat(bot, "friend_coupons_given") == 1
    # at the counter staff scan its page's QR and mark it used, as any coupon
    link = next(b["action"]["uri"] for m in flex_cards(said) for b in m["contents"]["footer"]["contents"]
                if b["action"]["type"] == "uri")
    async with bot.http.get(bot.url + "/c/" + link.rsplit("/", 1)[1]) as page:
        assert page.status == 200 and "初回のお買い物500円引き" in await page.text() and code in await page.text()
    status, used = await bot.admin("POST", f"/api/v1/coupons/{link.rsplit('/', 1)[1]}/use")
    assert status == 200 and used["code"] == code and used["user_id"] == friend, used
    # the same code again from the friend (a new message): refused as already referred, no second coupon
    again = await converse(platform, friend, platform.text(friend, f"招待コード {invite}"))
    assert not flex_cards(again)
    assert len(await bot.services.catalog.coupons(friend)) == 1
    assert await stat(bot, "friend_coupons_given") == 1


async def test_the_same_event_handled_again_shows_the_same_code_and_gives_nothing_new(bot_with: BotWith,
                                                                                      tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path))
    platform, program = bot.platform, bot.services.program
    referrer, friend = await joined(bot), await joined(bot)
    message = platform.text(friend, f"招待コード {await program.invite_code(referrer)}")
    code = coupon_card_code(await converse(platform, friend, message))
    # LINE's redelivery of it: the intake's dedupe drops it
    again = dict(message, deliveryContext={"isRedelivery": True})
    mark = len(platform.calls)
    assert await platform.send(again) == 200
    await bot.idle()
    assert platform.said_to(friend, mark) == []
    # one that gets past the dedupe (its mark expired): handled again, the same coupon shown, nothing given
    partition = partition_of(friend, bot.services.settings.stream_partitions)
    await bot.services.redis.delete(infra_keys.seen(partition, message["webhookEventId"]))
    said = await converse(platform, friend, again)
    assert coupon_card_code(said) == code
    assert len(await bot.services.catalog.coupons(friend)) == 1
    assert await stat(bot, "friend_coupons_given") == 1


async def test_a_crash_between_the_attribution_and_the_coupon_loses_and_repeats_nothing(
        clean_redis: str, platform: Platform, tmp_path: Path) -> None:
    bot = await start_bot(make_settings(clean_redis, platform, lease_ms=600, rewards_config=rules_with(tmp_path)),
                          platform, run_worker=False)
    try:
        services, program = bot.services, bot.services.program
        referrer, friend = new_user_id(), new_user_id()
        for uid in (referrer, friend):
            await program.see(uid, "follow", program.now_ms())
        invite = await program.invite_code(referrer)

        # the first worker records the referral and dies as the coupon is about to be given
        inside, never = asyncio.Event(), asyncio.Event()
        give = program.friend_coupons.give

        async def dies(uid: str) -> None:
            inside.set()
            await never.wait()

        program.friend_coupons.give = dies  # type: ignore[method-assign]
        first = Worker(services, build_router(), Metrics(), name="first")
        task = asyncio.create_task(first.run())
        message = platform.text(friend, f"招待コード {invite}")
        assert await platform.send(message) == 200
        await asyncio.wait_for(inside.wait(), 10)
        task.cancel()  # killed: no coupon, no answer, no ack
        await asyncio.gather(task, return_exceptions=True)
        program.friend_coupons.give = give  # type: ignore[method-assign]
        assert platform.said_to(friend) == [] and await program.friend_coupon(friend) is None
        assert await program.redis.hget(rewards_keys.referral(friend), "status") == b"pending"

        # the worker's sweep (settle) finds the friend and gives the coupon the referral owes…
        await program.settle_all()
        code = await program.friend_coupon(friend)
        assert code is not None and CODE.fullmatch(code)
        await program.settle_all()
        assert await program.friend_coupon(friend) == code

        # …and the next worker, handling the event again, shows that same coupon, once
        second = Worker(services, build_router(), Metrics(), name="second")
        task = asyncio.create_task(second.run())
        try:
            await platform.wait_for(lambda: platform.said_to(friend), 10)
            await bot.idle()
            await asyncio.sleep(0.2)
        finally:
            await second.stop()
            await asyncio.wait_for(task, 10)
        said = platform.said_to(friend)
        assert coupon_card_code(said) == code
        assert len(await services.catalog.coupons(friend)) == 1
        assert await program.friend_by_coupon(code) == friend
        assert platform.violations == []
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


async def test_a_crash_before_the_handler_answers_shows_the_same_code_on_the_rerun(
        clean_redis: str, platform: Platform, tmp_path: Path) -> None:
    """Killed after the coupon was given but before the answer went out: the re-run shows the same code."""
    bot = await start_bot(make_settings(clean_redis, platform, lease_ms=600, rewards_config=rules_with(tmp_path)),
                          platform, run_worker=False)
    try:
        services, program = bot.services, bot.services.program
        referrer, friend = new_user_id(), new_user_id()
        for uid in (referrer, friend):
            await program.see(uid, "follow", program.now_ms())
        inside, never = asyncio.Event(), asyncio.Event()
        dying = Router("dying")

        @dying.on(MessageEvent)
        async def attributes_then_dies(ctx: Ctx) -> None:
            await ctx.program.attribute(ctx.user_id, await program.invite_code(referrer), op=ctx.event_id)
            inside.set()
            await never.wait()

        task = asyncio.create_task(Worker(services, dying, Metrics(), name="first").run())
        assert await platform.send(platform.text(friend, f"招待コード {await program.invite_code(referrer)}")) == 200
        await asyncio.wait_for(inside.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        code = await program.friend_coupon(friend)
        assert code is not None

        second = Worker(services, build_router(), Metrics(), name="second")
        task = asyncio.create_task(second.run())
        try:
            await platform.wait_for(lambda: platform.said_to(friend), 10)
            await bot.idle()
        finally:
            await second.stop()
            await asyncio.wait_for(task, 10)
        assert coupon_card_code(platform.said_to(friend)) == code
        assert len(await services.catalog.coupons(friend)) == 1
    finally:
        await bot.http.close()
        await bot.runner.cleanup()


@pytest.mark.parametrize("reason", ["SELF_REFERRAL", "ALREADY_REFERRED", "EXISTING_CUSTOMER", "EXISTING_MEMBER",
                                    "UNKNOWN_CODE", "EXPIRED", "RATE_LIMITED"])
async def test_no_coupon_on_a_refused_code(bot_with: BotWith, tmp_path: Path, reason: str) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path))
    platform, program = bot.platform, bot.services.program
    referrer = await joined(bot)
    invite = await program.invite_code(referrer)
    friend = referrer if reason == "SELF_REFERRAL" else new_user_id()
    if reason == "EXISTING_MEMBER":
        await converse(platform, friend, platform.text(friend, "こんにちは"))
    elif friend != referrer:
        await converse(platform, friend, platform.follow(friend))
    first_code = None
    if reason == "ALREADY_REFERRED":  # referred (and given a coupon) by someone else first
        other = await joined(bot)
        first_code = coupon_card_code(await converse(
            platform, friend, platform.text(friend, f"招待コード {await program.invite_code(other)}")))
    if reason == "EXISTING_CUSTOMER":
        assert (await bot.admin("POST", "/api/v1/conversions",
                                {"order_id": "o-" + friend, "user_id": friend, "amount": 500}))[0] == 200
    if reason == "EXPIRED":
        window = program.rules.referral_window_days
        now = program.clock()
        program.clock = lambda: now + window * 86_400 + 60
    if reason == "RATE_LIMITED":
        for n in range(program.rules.guess_max_failures):
            await converse(platform, friend, platform.text(friend, f"ZZZZ{2345 + n * 11}"[:8]))
    text = "ZZZZ2345" if reason == "UNKNOWN_CODE" else f"招待コード {invite}"
    said = await converse(platform, friend, platform.text(friend, text))
    assert bot.services.texts.get("ja", f"refused_{reason}", days=7) in text_of(said)
    assert not flex_cards(said)
    await program.settle_all()  # the sweep finds nothing owed either
    assert await program.friend_coupon(friend) == first_code
    assert await coupon_field(bot, friend) == ({"code": first_code} if first_code else None)
    assert len(await bot.services.catalog.coupons(friend)) == (1 if first_code else 0)


async def test_on_join_the_coupon_comes_with_the_points_and_no_push(bot_with: BotWith, tmp_path: Path) -> None:
    """trigger = "join" completes the referral at once: the first order the coupon is for is still ahead, so it
    is given too; the answer to the code tells the friend of their points, so no push for them."""
    bot = await bot_with(rewards_config=rules_with(tmp_path, referral__trigger='"join"'))
    platform, program = bot.platform, bot.services.program
    referrer, friend = await joined(bot), await joined(bot)
    mark = len(platform.calls)
    said = await converse(platform, friend, platform.text(friend, f"招待コード {await program.invite_code(referrer)}"))
    await bot.idle()
    code = coupon_card_code(said)
    assert await program.friend_by_coupon(code) == friend
    assert pushes_to(platform, friend, mark) == []
    _, member = await bot.admin("GET", f"/api/v1/members/{friend}")
    assert member["points"] == 100 + program.rules.friend_points


async def test_an_empty_pool_owes_the_coupon_and_the_next_upload_gives_it(bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path, POOL))
    platform, program = bot.platform, bot.services.program
    referrer = await joined(bot)
    invite = await program.invite_code(referrer)
    b, c, d = await joined(bot), await joined(bot), await joined(bot)
    mark = len(platform.calls)
    said = await converse(platform, b, platform.text(b, f"招待コード {invite}"))
    assert "準備ができしだい" in text_of(said) and not flex_cards(said)
    assert platform.said_to(referrer, mark), "the referral went on: the referrer is told"
    assert await program.friend_coupon(b) is None and await stat(bot, "friend_coupons_owed") == 1
    # staff upload codes to the friend coupon's pool: the owed friend gets the first, told once
    path = f"/api/v1/rewards/{FRIEND_COUPON_POOL}/codes"
    status, body = await bot.admin("POST", path, {"codes": ["SHOP-AAA1", "SHOP-BBB2"]})
    assert status == 200 and body["added"] == 2, body  # (pool: as uploaded, before the owed took theirs)
    assert await program.friend_coupon(b) == "SHOP-AAA1" and await program.friend_by_coupon("shop-aaa1") == b
    told = pushes_to(platform, b)
    assert len(told) == 1 and "SHOP-AAA1" in told[0]["text"]
    # uploading again (the same codes: skipped) tells nobody twice
    assert (await bot.admin("POST", path, {"codes": ["SHOP-AAA1"]}))[1]["added"] == 0
    assert len(pushes_to(platform, b)) == 1
    # the next friend gets the next code at once, in the answer; the one after finds the pool empty again
    said = await converse(platform, c, platform.text(c, f"招待コード {invite}"))
    code = next(b["action"]["clipboardText"] for m in flex_cards(said)
                for b in m["contents"]["footer"]["contents"] if b["action"]["type"] == "clipboard")
    assert code == "SHOP-BBB2" and "10%オフ" in text_of(said)
    said = await converse(platform, d, platform.text(d, f"招待コード {invite}"))
    assert "準備ができしだい" in text_of(said)
    assert await stat(bot, "friend_coupons_owed") == 2 and await stat(bot, "friend_coupons_given") == 2
    # the pool is uploaded to only while the rules give pool coupons; a catalog id stays a catalog id
    assert (await bot.admin("POST", "/api/v1/rewards/nope/codes", {"codes": ["X"]}))[0] == 404


async def test_the_friend_is_told_once_when_their_own_points_arrive(bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path))
    platform, program = bot.platform, bot.services.program
    referrer, friend = await joined(bot), await joined(bot)
    await converse(platform, friend, platform.text(friend, f"招待コード {await program.invite_code(referrer)}"))
    mark = len(platform.calls)
    order = {"order_id": "o-friend-1", "user_id": friend, "amount": 5000}
    assert (await bot.admin("POST", "/api/v1/conversions", order))[0] == 200
    told = pushes_to(platform, friend, mark)
    points = program.rules.friend_points
    assert len(told) == 1 and f"{points} ポイントが届きました" in told[0]["text"], told
    assert pushes_to(platform, referrer, mark), "the referrer is told as before"
    # the same order reported again (a retry): nothing new reaches the friend
    again = len(platform.calls)
    assert (await bot.admin("POST", "/api/v1/conversions", order))[0] == 200
    assert pushes_to(platform, friend, again) == []
    # a later order is no referral news
    assert (await bot.admin("POST", "/api/v1/conversions", {**order, "order_id": "o-friend-2"}))[0] == 200
    assert pushes_to(platform, friend, again) == []


async def test_held_points_are_told_with_the_day_they_can_be_spent_in_english(bot_with: BotWith,
                                                                              tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path, referral__hold_days="7"))
    platform, program = bot.platform, bot.services.program
    referrer, friend = await joined(bot), new_user_id()
    await converse(platform, friend, platform.follow(friend, language="en"))
    await converse(platform, friend, platform.text(friend, f"code {await program.invite_code(referrer)}"))
    mark = len(platform.calls)
    assert (await bot.admin("POST", "/api/v1/conversions",
                            {"order_id": "o-held", "user_id": friend, "amount": 5000}))[0] == 200
    told = pushes_to(platform, friend, mark)
    assert len(told) == 1 and "You can use them from" in told[0]["text"], told


async def test_the_points_notice_can_be_switched_off(bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path, notifications__friend_points="false"))
    platform, program = bot.platform, bot.services.program
    referrer, friend = await joined(bot), await joined(bot)
    await converse(platform, friend, platform.text(friend, f"招待コード {await program.invite_code(referrer)}"))
    mark = len(platform.calls)
    assert (await bot.admin("POST", "/api/v1/conversions",
                            {"order_id": "o-off", "user_id": friend, "amount": 5000}))[0] == 200
    assert pushes_to(platform, friend, mark) == []


async def test_generated_codes_are_unique_even_when_the_random_repeats(clean_redis: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    program = await program_for(clean_redis, rules_with(tmp_path), clock)
    try:
        coupons: FriendCoupons = program.friend_coupons
        referrer, a, b = new_user_id(), new_user_id(), new_user_id()
        for uid in (referrer, a, b):
            await program.see(uid, "follow", clock.ms)
        invite = await program.invite_code(referrer)
        picks = iter(["WELCOME-AAAAA-22222", "WELCOME-AAAAA-22222", "WELCOME-BBBBB-33333"])
        monkeypatch.setattr(friend_coupons, "new_friend_code", lambda prefix: next(picks))
        first = await program.attribute(a, invite, op="e-a")
        second = await program.attribute(b, invite, op="e-b")
        assert first.coupon and second.coupon
        assert (first.coupon.code, second.coupon.code) == ("WELCOME-AAAAA-22222", "WELCOME-BBBBB-33333")
        assert await coupons.friend_by_coupon("WELCOME-AAAAA-22222") == a
        assert await coupons.friend_by_coupon("WELCOME-BBBBB-33333") == b
    finally:
        await program.redis.aclose()
    made = {new_friend_code("") for _ in range(2000)}
    assert len(made) == 2000 and all(set(c.replace("-", "")) <= set(codes.ALPHABET) for c in made)


@pytest.mark.parametrize("section, message", [
    ('kind = "generated"', "one of yen_off"),
    ('yen_off = 500\npercent_off = 10', "one of yen_off"),
    ('percent_off = 150', "1 to 100"),
    ('yen_off = 500\nprefix = "welcome"', "capital letters"),
    ('kind = "pool"\nyen_off = 500\nprefix = "W-"', "prefix is for"),
    ('kind = "coupon"\nyen_off = 500', "must be one of generated, pool"),
    ('yen_off = 500\nvalid_days = 0', "at least 1"),
    ('yen_off = 500\nfree_coffee = true', "unknown setting"),
])
def test_a_bad_friend_coupon_section_is_refused_with_its_line(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(variant(tmp_path, f"[referral.friend_coupon]\n{section}\n"))
    assert message in str(caught.value) and "referral.friend_coupon" in str(caught.value)
    assert re.search(r"line \d+", str(caught.value))


def test_switched_off_or_left_out_gives_none(tmp_path: Path) -> None:
    assert load_rules(variant(tmp_path)).friend_coupon is None
    assert load_rules(variant(tmp_path, "[referral.friend_coupon]\nenabled = false\nyen_off = 500\n")
                      ).friend_coupon is None
    rule = load_rules(rules_with(tmp_path)).friend_coupon
    assert rule is not None and rule.name["en"] == "¥500 off your first order" and rule.valid_days == 30


async def test_points_approved_after_review_are_told_to_the_friend_once(bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=rules_with(tmp_path))
    platform, program = bot.platform, bot.services.program
    referrer, friend = await joined(bot), await joined(bot)
    await converse(platform, friend, platform.text(friend, f"招待コード {await program.invite_code(referrer)}"))
    own = {"order_id": "o-own", "user_id": referrer, "amount": 1000, "fingerprint": "fp-1"}
    assert (await bot.admin("POST", "/api/v1/conversions", own))[0] == 200
    mark = len(platform.calls)
    status, body = await bot.admin("POST", "/api/v1/conversions",
                                   {"order_id": "o-first", "user_id": friend, "amount": 2000, "fingerprint": "fp-1"})
    assert status == 200 and body["referral"]["status"] == "review", body
    assert pushes_to(platform, friend, mark) == [], "nothing paid yet: nothing told"
    for _ in range(2):  # approved, then the same approval again (a retried request)
        assert (await bot.admin("POST", f"/api/v1/referrals/{friend}/approve", {}))[0] == 200
    told = pushes_to(platform, friend, mark)
    assert len(told) == 1 and "ポイントが届きました" in told[0]["text"], told


async def test_the_friend_hears_of_their_points_at_once_even_at_night(bot_with: BotWith, tmp_path: Path) -> None:
    """The shipped rules: the friend's points notice, like the referrer's, is the answer to something that just
    happened (their order), so it ignores the quiet hours."""
    bot = await bot_with(rewards_config=variant(tmp_path, GENERATED))
    platform, program = bot.platform, bot.services.program
    tokyo = program.rules.timezone
    night = (datetime.now(tokyo) + timedelta(days=1)).replace(hour=2).timestamp()
    program.clock = lambda: night
    referrer, friend = await joined(bot), await joined(bot)
    await converse(platform, friend, platform.text(friend, f"招待コード {await program.invite_code(referrer)}"))
    mark = len(platform.calls)
    assert (await bot.admin("POST", "/api/v1/conversions",
                            {"order_id": "o-night", "user_id": friend, "amount": 5000}))[0] == 200
    assert len(pushes_to(platform, friend, mark)) == 1


@pytest.mark.parametrize("kind", ["generated", "pool"])
async def test_two_calls_racing_give_one_coupon_and_lose_no_code(clean_redis: str, tmp_path: Path, kind: str) -> None:
    """The sweep and the handler at once: one reads "due", the other gives the coupon meanwhile, then the first
    takes a code. One coupon stands; the first's code goes back (pool) or is forgotten (generated)."""
    clock = Clock()
    program = await program_for(clean_redis, rules_with(tmp_path, GENERATED if kind == "generated" else POOL), clock)
    try:
        coupons = program.friend_coupons
        referrer, friend = new_user_id(), new_user_id()
        for uid in (referrer, friend):
            await program.see(uid, "follow", clock.ms)
        if kind == "pool":
            await program.redis.rpush(rewards_keys.reward_pool(FRIEND_COUPON_POOL), "P-1", "P-2")
        real = coupons._code_for
        taken: list[str | None] = []

        async def the_other_call_first(uid: str, kind: str, prefix: str) -> str | None:
            coupons._code_for = real  # type: ignore[method-assign]
            await coupons.give(uid)  # the whole other call, between this one's read of "due" and its code
            taken.append(await real(uid, kind, prefix))
            return taken[-1]

        coupons._code_for = the_other_call_first  # type: ignore[method-assign]
        attribution = await program.attribute(friend, await program.invite_code(referrer), op="e-1")
        given = await program.friend_coupon(friend)
        assert attribution.coupon is not None and attribution.coupon.code == given
        assert await program.friend_by_coupon(given) == friend
        lost = taken[0]
        assert lost is not None and lost != given and await program.friend_by_coupon(lost) is None
        if kind == "pool":
            assert given == "P-1"
            assert await program.redis.lrange(rewards_keys.reward_pool(FRIEND_COUPON_POOL), 0, -1) == [b"P-2"]
        assert int(await program.redis.hget(rewards_keys.STATS, "friend_coupons_given")) == 1
    finally:
        await program.redis.aclose()
