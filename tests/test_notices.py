"""Push notices: each switchable in the rules, quiet hours deferring them durably, and the clock sending them
once — also when the clock runs twice or crashes between the push and its bookkeeping."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from bot import notices
from bot.app import WORKER
from handlers.rewards_catalog import ShowReward
from linesim.platform import Call, Platform, new_user_id, text_of
from rewards.rules import NOTICE_KINDS, Notifications, RulesError, load_rules
from tests.support.harness import Bot, BotWith, converse, pack
from tests.support.rules_helpers import variant

JST = ZoneInfo("Asia/Tokyo")
MUG = ('[[rewards]]\nid = "mug"\ncost = 10\nstock = 0\nname = { ja = "マグカップ", en = "A mug" }\n'
       "[[referral.milestones]]\ncount = 1\npoints = 100\n")
TEXTS = {"friend_joined": "お友だちが登録しました", "referral_completed": "初めてのお買い物",
         "milestone": "招待 1 人達成", "tier_up": "ランクがシルバー", "points_expiring": "有効期限",
         "stock_back": "再入荷"}


@pytest_asyncio.fixture
async def shop(bot_with: BotWith, tmp_path: Path, request: pytest.FixtureRequest) -> Bot:
    settings = getattr(request, "param", {})
    rules = variant(tmp_path, MUG, **settings)
    return await bot_with(rewards_config=rules)


def pushes(platform: Platform, since: int = 0) -> list[Call]:
    return [c for c in platform.calls[since:] if c.endpoint == "push" and c.status == 200]


def pushed_text(platform: Platform) -> str:
    return "\n".join(m["text"] for c in pushes(platform) for m in c.body["messages"])


async def every_notice_happens(bot: Bot) -> None:
    """One of each: a friend joins with a code, completes with a big first order (milestone 1, tier up),
    is refused a sold-out mug that staff then restock, and everyone's points near their expiry."""
    platform = bot.platform
    referrer, friend = new_user_id(), new_user_id()
    await converse(platform, referrer, platform.follow(referrer))
    await converse(platform, friend, platform.follow(friend))
    code = await bot.services.program.invite_code(referrer)
    await converse(platform, friend, platform.text(friend, f"招待コード {code} で登録します"))
    status, body = await bot.admin("POST", "/api/v1/conversions",
                                   {"order_id": "o-1", "user_id": friend, "amount": 100_000})
    assert status == 200 and body["referral"]["status"] == "completed", body
    sold_out = await converse(platform, friend, platform.postback(friend, pack(ShowReward("mug"))))
    assert "マグカップ" in text_of(sold_out)
    assert (await bot.admin("POST", "/api/v1/rewards/mug/stock", {"add": 1}))[0] == 200
    await bot.app[WORKER].clock.tick(int(bot.services.program.clock() * 1000) + 360 * 86_400_000)


ALL_ON = {"notifications__quiet_hours": '""'}
ALL_OFF = {**ALL_ON, **{f"notifications__{kind}": "false" for kind in NOTICE_KINDS}}


@pytest.mark.parametrize("shop", [ALL_ON], indirect=True)
async def test_every_notice_is_sent_when_switched_on(shop: Bot) -> None:
    await every_notice_happens(shop)
    said = pushed_text(shop.platform)
    for kind, words in TEXTS.items():
        assert words in said, f"{kind} was not pushed: {said}"
    keys = [c.headers.get("X-Line-Retry-Key") for c in pushes(shop.platform)]
    assert all(keys) and len(set(keys)) == len(keys)


@pytest.mark.parametrize("shop", [ALL_OFF], indirect=True)
async def test_a_notice_switched_off_is_never_pushed(shop: Bot) -> None:
    await every_notice_happens(shop)
    await shop.app[WORKER].clock.tick(int(shop.services.program.clock() * 1000) + 400 * 86_400_000)
    assert pushes(shop.platform) == [], pushed_text(shop.platform)
    assert await notices.pending(shop.services) == 0, "a notice switched off is not kept for later either"


def at(hour: int, minute: int = 0, day: int = 1) -> float:
    return datetime(2027, 6, day, hour, minute, tzinfo=JST).timestamp()


async def big_order_at_night(shop: Bot) -> str:
    """A member's order at 23:00 shop time raises their tier: the tier-up notice waits for the morning."""
    platform, program = shop.platform, shop.services.program
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    program.clock = lambda: at(23)
    status, _ = await shop.admin("POST", "/api/v1/conversions", {"order_id": f"o-{uid}", "user_id": uid,
                                                                  "amount": 100_000})
    assert status == 200
    return uid


async def test_quiet_hours_defer_to_their_end_and_the_clock_sends_once(shop: Bot) -> None:
    platform, program = shop.platform, shop.services.program
    uid = await big_order_at_night(shop)
    assert pushes(platform) == [], "nothing is pushed during quiet hours"
    assert await notices.pending(shop.services) == 1
    worker = shop.app[WORKER]

    program.clock = lambda: at(8, 59, day=2)
    await worker.clock.tick(int(at(8, 59, day=2) * 1000))
    assert pushes(platform) == [], "still quiet at 08:59"

    program.clock = lambda: at(9, 0, day=2)
    await worker.clock.tick(int(at(9, 0, day=2) * 1000))
    await worker.clock.tick(int(at(9, 0, day=2) * 1000))  # the clock running twice sends nothing more
    sent = pushes(platform)
    assert len(sent) == 1 and sent[0].to == [uid] and "シルバー" in sent[0].body["messages"][0]["text"]
    assert sent[0].headers["X-Line-Retry-Key"]
    assert await notices.pending(shop.services) == 0

    # the same order reported again changes nothing and tells nothing
    await shop.admin("POST", "/api/v1/conversions", {"order_id": f"o-{uid}", "user_id": uid, "amount": 100_000})
    await worker.clock.tick(int(at(9, 1, day=2) * 1000))
    assert len(pushes(platform)) == 1


async def test_a_crash_between_push_and_bookkeeping_sends_nothing_twice(shop: Bot, monkeypatch) -> None:
    platform, program = shop.platform, shop.services.program
    uid = await big_order_at_night(shop)
    worker = shop.app[WORKER]
    morning = int(at(9, 30, day=2) * 1000)
    program.clock = lambda: morning / 1000

    real_forget = notices._forget

    async def crash(*args: object) -> None:
        raise ConnectionError("the worker died right after LINE took the push")

    monkeypatch.setattr(notices, "_forget", crash)
    with pytest.raises(ConnectionError):
        await notices.send_due(shop.services, morning)
    assert len(pushes(platform)) == 1 and await notices.pending(shop.services) == 1

    monkeypatch.setattr(notices, "_forget", real_forget)
    await worker.clock.tick(morning)  # the next clock sends it again with the same key: LINE answers 409
    again = [c for c in platform.calls if c.endpoint == "push" and c.status == 409]
    assert again and again[0].headers["X-Line-Retry-Key"] == pushes(platform)[0].headers["X-Line-Retry-Key"]
    assert len(platform.said_to(uid)) == len([m for c in platform.calls if c.status == 200 and uid in c.to
                                               for m in c.body["messages"]])
    assert len(pushes(platform)) == 1, "delivered once"
    assert await notices.pending(shop.services) == 0


async def test_referrer_notices_ignore_quiet_hours_by_default(shop: Bot) -> None:
    """The contract: a referrer hears at once, at any hour, that a friend joined and that it completed."""
    platform, program = shop.platform, shop.services.program
    night = (datetime.now(JST) + timedelta(days=1)).replace(hour=2).timestamp()
    program.clock = lambda: night  # the middle of the (next) night, well inside the referral window
    referrer, friend = new_user_id(), new_user_id()
    await converse(platform, referrer, platform.follow(referrer))
    await converse(platform, friend, platform.follow(friend))
    code = await program.invite_code(referrer)
    await converse(platform, friend, platform.text(friend, f"招待コード {code} で登録します"))
    await platform.wait_for(lambda: pushes(platform))
    assert TEXTS["friend_joined"] in pushed_text(platform)
    await shop.admin("POST", "/api/v1/conversions", {"order_id": "night", "user_id": friend, "amount": 500})
    assert TEXTS["referral_completed"] in pushed_text(platform)
    assert TEXTS["milestone"] not in pushed_text(platform), "the milestone waits for the morning"
    assert await notices.pending(shop.services) == 1


@pytest.mark.parametrize("minute, quiet", [(20 * 60 + 59, False), (21 * 60, True), (0, True), (8 * 60 + 59, True),
                                           (9 * 60, False), (12 * 60, False)])
def test_quiet_hours_across_midnight(minute: int, quiet: bool) -> None:
    assert Notifications().quiet_at(minute) is quiet
    local = datetime(2027, 6, 1, minute // 60, minute % 60, tzinfo=JST)
    until = notices.quiet_until(Notifications(), local)
    assert (until is not None) is quiet
    if until:
        assert (until.hour, until.minute) == (9, 0) and until > local


@pytest.mark.parametrize("settings", [{"notifications__quiet_hours": '"25:00-09:00"'},
                                      {"notifications__quiet_hours": '"night"'},
                                      {"notifications__tier_up": '"yes"'}])
def test_a_bad_notifications_setting_names_its_line(tmp_path: Path, settings: dict) -> None:
    with pytest.raises(RulesError, match=r"line \d+ \(notifications\."):
        load_rules(variant(tmp_path, **settings))
