"""Prompts ([prompts]): invite to refer after a purchase or a marked custom event, one reminder for a referred
friend who has not ordered, "a reward is in reach" once per cost. Each fires when it should and not otherwise,
within one weekly cap per member (also for prompts decided at the same moment), deferred by quiet hours,
never twice across redeliveries, re-runs and crashes, and not at all when the rules switch it off."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import notices
from bot.app import WORKER
from bot.chat.staff import add_staff
from linesim.platform import Call, Platform, new_user_id
from rewards.referrals import Attribution
from rewards.rules import NOTICE_KINDS, RulesError, load_rules
from tests.support.harness import Bot, BotWith, converse
from tests.support.rules_helpers import variant

JST = ZoneInfo("Asia/Tokyo")
DAY_MS = 86_400_000
# every other notice off and no quiet hours: each push a test sees is a prompt
QUIET_OFF = {"notifications__quiet_hours": '""', **{f"notifications__{kind}": "false" for kind in NOTICE_KINDS}}
ALL_PROMPTS = {"prompts__refer_after_purchase": "true", "prompts__refer_after_event": "true",
               "prompts__friend_reminder": "true", "prompts__reward_in_reach": "true"}


async def shop_with(bot_with: BotWith, tmp_path: Path, extra: str = "", **settings: str) -> Bot:
    return await bot_with(rewards_config=variant(tmp_path, extra, **{**QUIET_OFF, **settings}))


def pushes(platform: Platform, to: str | None = None, since: int = 0) -> list[Call]:
    return [c for c in platform.calls[since:] if c.endpoint == "push" and c.status == 200 and (to is None or
                                                                                               c.to == [to])]


def said(call: Call) -> str:
    return "\n".join(m.get("altText") or m.get("text", "") for m in call.body["messages"])


async def member(bot: Bot) -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    return uid


async def order(bot: Bot, uid: str, order_id: str, amount: int = 500) -> dict:
    status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": order_id, "user_id": uid,
                                                                    "amount": amount})
    assert status == 200, body
    return body  # type: ignore[return-value]


async def event(bot: Bot, uid: str, name: str, event_id: str, value: int | None = None) -> tuple[int, dict]:
    body = {"user_id": uid, "name": name, "event_id": event_id, **({"value": value} if value is not None else {})}
    return await bot.admin("POST", "/api/v1/events", body)  # type: ignore[return-value]


def set_clock(bot: Bot, at_s: float) -> None:
    bot.services.program.clock = lambda: at_s


def week_later(days: float = 7) -> float:
    return time.time() + days * 86_400


# ---- invite to refer after a purchase ---------------------------------------------------------------------------
async def test_a_purchase_invites_the_buyer_to_refer_once(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, prompts__refer_after_purchase="true")
    platform = shop.platform
    uid = await member(shop)
    await order(shop, uid, "o-1")
    sent = pushes(platform, uid)
    assert len(sent) == 1, [said(c) for c in sent]
    card = sent[0].body["messages"][0]
    assert card["type"] == "flex" and "招待" in card["altText"] and "300" in card["altText"]
    buttons = [b["action"] for b in card["contents"]["footer"]["contents"]]
    assert buttons[0]["uri"].startswith("https://line.me/R/share?text=")
    assert buttons[1] == {"type": "message", "label": "招待カードを見る", "text": "招待"}  # the full invite card
    assert sent[0].headers["X-Line-Retry-Key"]

    await order(shop, uid, "o-1")  # the same order reported again: nothing new
    await converse(platform, uid, platform.text(uid, "招待"))  # the card's button works as the invite word
    assert len(pushes(platform, uid)) == 1


async def test_a_crash_after_the_push_is_finished_by_the_repeated_order_once(bot_with: BotWith, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The push went out, then the process died before noting it: the shop reports the order again (it got no
    answer); the prompt is sent again with the same retry key, LINE answers 409, the member has one."""
    shop = await shop_with(bot_with, tmp_path, prompts__refer_after_purchase="true")
    platform, prompts = shop.platform, shop.services.program.prompts
    uid = await member(shop)
    real = prompts.handed

    async def crash(*args: object) -> None:
        raise ConnectionError("the process died right after LINE took the push")

    monkeypatch.setattr(prompts, "handed", crash)
    status, _ = await shop.admin("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": uid, "amount": 500})
    assert status == 500 and len(pushes(platform, uid)) == 1
    monkeypatch.setattr(prompts, "handed", real)
    await order(shop, uid, "o-1")
    repeated = [c for c in platform.calls if c.endpoint == "push" and c.status == 409]
    assert len(repeated) == 1 and repeated[0].headers["X-Line-Retry-Key"] == \
        pushes(platform, uid)[0].headers["X-Line-Retry-Key"]
    await order(shop, uid, "o-1")  # noted now: a third report sends nothing at all
    assert len([c for c in platform.calls if c.endpoint == "push"]) == 2


async def test_an_order_below_the_referral_minimum_or_switched_off_prompts_nothing(bot_with: BotWith,
                                                                                    tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, prompts__refer_after_purchase="true", referral__minimum_order="1000")
    uid = await member(shop)
    await order(shop, uid, "small", amount=999)
    assert pushes(shop.platform) == []
    await order(shop, uid, "big", amount=1000)
    assert len(pushes(shop.platform, uid)) == 1


async def test_switched_off_in_the_rules_nothing_is_ever_prompted(bot_with: BotWith, tmp_path: Path) -> None:
    """The shipped rules: every prompt off. Purchases, a 5★ review, rich members, a friend who never buys."""
    shop = await shop_with(bot_with, tmp_path)
    platform, program = shop.platform, shop.services.program
    referrer, friend = await member(shop), await member(shop)
    code = await program.invite_code(referrer)
    await converse(platform, friend, platform.text(friend, f"招待コード {code} で登録します"))
    await order(shop, referrer, "o-1", amount=100_000)  # 1,000 points: every reward in reach
    assert (await event(shop, referrer, "review", "r-1", 5))[0] == 200
    set_clock(shop, week_later(10))
    await shop.app[WORKER].clock.tick(program.now_ms())
    assert pushes(platform) == []
    assert await program.prompts.reminders_scheduled() == 0, "nothing is even scheduled"


# ---- invite to refer after a marked custom event -----------------------------------------------------------------
async def test_a_five_star_review_invites_and_other_events_do_not(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, prompts__refer_after_event="true", prompts__weekly_cap="10")
    platform = shop.platform
    uid = await member(shop)
    for name, event_id, value in [("review", "r-4", 4), ("review", "r-none", None), ("share", "s-1", 5)]:
        status, body = await event(shop, uid, name, event_id, value)
        assert status == 200 and body["applied"], body
    assert pushes(platform) == [], "a 4★ review, a review without stars and a share (not marked) invite nobody"
    assert (await event(shop, uid, "review", "r-5", 5))[0] == 200
    assert (await event(shop, uid, "review", "r-5", 5))[0] == 200  # the same event again
    sent = pushes(platform, uid)
    assert len(sent) == 1 and sent[0].body["messages"][0]["contents"]["body"]["contents"][0]["text"] == \
        "ありがとうございます！"


async def test_an_event_value_that_is_not_a_whole_number_is_refused_and_changes_nothing(bot: Bot) -> None:
    uid = await member(bot)
    for bad in ("5", -1, 1.5, True, 10_000_000):
        status, body = await bot.admin("POST", "/api/v1/events", {"user_id": uid, "name": "review",
                                                                   "event_id": f"bad-{bad}", "value": bad})
        assert status == 400 and body["error"]["code"] in ("INVALID_FIELD", "INVALID_VALUE"), body
    _, ledger = await bot.admin("GET", f"/api/v1/members/{uid}/ledger")
    assert not any(e.get("rule") == "events.review" for e in ledger["entries"]), "no points written"


# ---- the weekly cap ------------------------------------------------------------------------------------------
async def test_the_weekly_cap_counts_every_prompt_of_the_iso_week(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **ALL_PROMPTS, prompts__weekly_cap="2")
    platform = shop.platform
    uid = await member(shop)
    # Monday 2027-06-07 noon shop time: three prompts' worth of outcomes, two go out
    monday = datetime(2027, 6, 7, 12, tzinfo=JST).timestamp()
    set_clock(shop, monday)
    await order(shop, uid, "o-1")
    await event(shop, uid, "review", "r-1", 5)
    await order(shop, uid, "o-2")
    assert len(pushes(platform, uid)) == 2
    set_clock(shop, monday + 6 * 86_400 + 11 * 3_600)  # Sunday 23:00: still the same week
    await order(shop, uid, "o-3")
    assert len(pushes(platform, uid)) == 2
    set_clock(shop, monday + 7 * 86_400)  # the next Monday: a new week
    await order(shop, uid, "o-4")
    assert len(pushes(platform, uid)) == 3
    await order(shop, uid, "o-2")  # an order capped last week, reported again: a repeat never starts a prompt
    assert len(pushes(platform, uid)) == 3


@pytest.mark.parametrize("cap", [1, 3])
async def test_prompts_decided_at_the_same_moment_never_pass_the_cap(bot_with: BotWith, tmp_path: Path,
                                                                     cap: int) -> None:
    shop = await shop_with(bot_with, tmp_path, prompts__refer_after_purchase="true",
                           prompts__weekly_cap=str(cap))
    uid = await member(shop)
    await asyncio.gather(*(order(shop, uid, f"o-{n}") for n in range(8)))
    assert len(pushes(shop.platform, uid)) == cap
    _, stats = await shop.admin("GET", "/api/v1/stats")
    assert stats["prompts:refer_after_purchase"] == cap and stats["prompts_capped:refer_after_purchase"] == 8 - cap
    other = await member(shop)  # the cap is per member
    await order(shop, other, "o-other")
    assert len(pushes(shop.platform, other)) == 1


# ---- quiet hours, blocked members, staff -------------------------------------------------------------------------
async def test_quiet_hours_defer_a_prompt_to_the_morning_never_drop_it(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, prompts__refer_after_purchase="true",
                           notifications__quiet_hours='"21:00-09:00"')
    platform, worker = shop.platform, shop.app[WORKER]
    uid = await member(shop)
    night = datetime(2027, 6, 1, 23, tzinfo=JST).timestamp()
    set_clock(shop, night)
    await order(shop, uid, "night")
    await order(shop, uid, "night")  # reported twice in the night: still one kept
    assert pushes(platform) == [] and await notices.pending(shop.services) == 1
    morning = datetime(2027, 6, 2, 9, tzinfo=JST).timestamp()
    set_clock(shop, morning)
    await worker.clock.tick(int(morning * 1000))
    await worker.clock.tick(int(morning * 1000))
    sent = pushes(platform, uid)
    assert len(sent) == 1 and sent[0].body["messages"][0]["type"] == "flex"
    assert await notices.pending(shop.services) == 0


async def test_blocked_members_and_staff_are_never_prompted(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **ALL_PROMPTS)
    platform = shop.platform
    blocked, staff = await member(shop), await member(shop)
    await platform.send(platform.unfollow(blocked))
    await shop.idle()
    await add_staff(shop.services, staff)
    for uid in (blocked, staff):
        await order(shop, uid, f"o-{uid}", amount=100_000)
        await event(shop, uid, "review", f"r-{uid}", 5)
    assert pushes(platform) == []
    # nor did they use up the week: unblocked, the member hears of the next order
    await platform.send(platform.follow(blocked, unblocked=True))
    await shop.idle()
    await order(shop, blocked, "after")
    assert len(pushes(platform, blocked)) == 1


# ---- "you can afford a reward" once per cost -----------------------------------------------------------------
async def test_a_reward_in_reach_is_told_once_per_cost(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, prompts__reward_in_reach="true", prompts__weekly_cap="10")
    platform = shop.platform
    uid = await member(shop)  # 100 signup points: nothing in reach (coffee 300, tote 1,500 from silver)
    await order(shop, uid, "o-1", amount=10_000)  # 200
    assert pushes(platform) == []
    await order(shop, uid, "o-2", amount=10_000)  # 300: the coffee
    sent = pushes(platform, uid)
    assert len(sent) == 1 and "コーヒー1杯無料" in said(sent[0]) and "300" in said(sent[0])
    assert sent[0].body["messages"][0]["quickReply"]["items"][0]["action"]["text"] == "特典"
    await order(shop, uid, "o-3", amount=5_000)  # 350: the same cost, nothing new
    # below the cost and up again: not told again (once per cost, ever)
    assert (await shop.admin("POST", f"/api/v1/members/{uid}/adjustments", {"points": -200, "reason": "test"}))[0] \
        == 200
    await order(shop, uid, "o-4", amount=20_000)
    assert len(pushes(platform, uid)) == 1
    await shop.services.program.set_language(uid, "en")
    await order(shop, uid, "o-5", amount=150_000)  # 1,850 points, silver: the tote, in the member's English
    sent = pushes(platform, uid)
    assert len(sent) == 2 and "Our tote bag" in said(sent[1]) and "1,500 pt" in said(sent[1]), said(sent[1])


async def test_a_jump_past_several_costs_tells_the_dearest_once(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, prompts__reward_in_reach="true", prompts__weekly_cap="10")
    uid = await member(shop)
    await order(shop, uid, "big", amount=200_000)  # 2,100 points and silver: coffee and tote at once
    sent = pushes(shop.platform, uid)
    assert len(sent) == 1 and "トートバッグ" in said(sent[0])
    await order(shop, uid, "more", amount=1_000)
    assert len(pushes(shop.platform, uid)) == 1, "the cheaper coffee is no news after the tote"


async def test_one_prompt_per_outcome_a_reward_in_reach_before_the_invitation(bot_with: BotWith,
                                                                              tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **ALL_PROMPTS, prompts__weekly_cap="10")
    uid = await member(shop)
    await order(shop, uid, "o-1", amount=20_000)  # 300 points: the coffee is news; no invitation on top
    await order(shop, uid, "o-2")  # nothing new in reach: the invitation
    sent = pushes(shop.platform, uid)
    assert [m["type"] for c in sent for m in c.body["messages"]] == ["text", "flex"]
    assert "コーヒー" in said(sent[0]) and "招待" in said(sent[1])


# ---- the referred friend's one reminder ------------------------------------------------------------------------
async def referred_friend(shop: Bot) -> tuple[str, str]:
    platform, program = shop.platform, shop.services.program
    referrer, friend = await member(shop), await member(shop)
    code = await program.invite_code(referrer)
    await converse(platform, friend, platform.text(friend, f"招待コード {code} で登録します"))
    return referrer, friend


async def tick_at(shop: Bot, at_s: float) -> None:
    set_clock(shop, at_s)
    await shop.app[WORKER].clock.tick(int(at_s * 1000))


REMINDER = {"prompts__friend_reminder": "true", "prompts__reminder_days": "3"}


async def test_a_friend_who_has_not_bought_gets_one_reminder_after_n_days(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **REMINDER)
    platform = shop.platform
    start = time.time()
    referrer, friend = await referred_friend(shop)
    await tick_at(shop, start + 2.9 * 86_400)
    assert pushes(platform) == [], "not before N days"
    await tick_at(shop, start + 3.01 * 86_400)
    sent = pushes(platform, friend)
    assert len(sent) == 1 and "初めてのお買い物で 300 ポイント" in said(sent[0]), said(sent[0])
    assert "クーポン" not in said(sent[0]), "no coupon line when the program gives none"
    await tick_at(shop, start + 3.5 * 86_400)
    await tick_at(shop, start + 30 * 86_400)
    assert len(pushes(platform)) == 1 and pushes(platform, referrer) == []
    # the attribution handled again (a redelivery after a crash): scheduled again, never sent again
    again = Attribution(ok=True, referrer=referrer, replay=True)
    await notices.after_attribution(shop.services, again, friend, op="again")
    await tick_at(shop, start + 40 * 86_400)
    assert len(pushes(platform)) == 1


async def test_a_friend_who_bought_is_never_reminded(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **REMINDER)
    start = time.time()
    _, friend = await referred_friend(shop)
    await order(shop, friend, "first")
    await tick_at(shop, start + 4 * 86_400)
    assert pushes(shop.platform) == []
    assert await shop.services.program.prompts.reminders_scheduled() == 0, "dropped from the schedule"


async def test_the_reminder_carries_the_welcome_coupon_when_there_is_one(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **REMINDER)
    program = shop.services.program
    start = time.time()
    _, friend = await referred_friend(shop)

    async def friend_coupon(uid: str) -> str | None:  # what [referral.friend_coupon] will answer
        return "WELCOME-7Q2X" if uid == friend else None

    program.friend_coupon = friend_coupon  # type: ignore[attr-defined]
    await tick_at(shop, start + 3.1 * 86_400)
    sent = pushes(shop.platform, friend)
    assert len(sent) == 1 and "WELCOME-7Q2X" in said(sent[0])


async def test_a_reminder_due_in_quiet_hours_waits_for_the_morning(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **REMINDER, notifications__quiet_hours='"21:00-09:00"')
    start = time.time()
    _, friend = await referred_friend(shop)
    due = datetime.fromtimestamp(start + 3 * 86_400 + 60, JST)
    night = due.replace(hour=23, minute=0) if due.hour < 23 else due
    morning = (night.replace(hour=9, minute=0)).timestamp() + 86_400
    await tick_at(shop, night.timestamp())
    assert pushes(shop.platform) == [] and await shop.services.program.prompts.reminders_scheduled() == 1
    await tick_at(shop, morning)
    assert len(pushes(shop.platform, friend)) == 1


async def test_a_crash_after_the_reminder_went_out_sends_it_once(bot_with: BotWith, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shop = await shop_with(bot_with, tmp_path, **REMINDER)
    platform, prompts = shop.platform, shop.services.program.prompts
    start = time.time()
    _, friend = await referred_friend(shop)

    async def crash(*args: object) -> None:
        raise ConnectionError("the worker died right after LINE took the push")

    real = prompts.handed
    monkeypatch.setattr(prompts, "handed", crash)
    with pytest.raises(ConnectionError):
        await notices.remind_friends(shop.services, int((start + 3.1 * 86_400) * 1000))
    assert len(pushes(platform, friend)) == 1
    monkeypatch.setattr(prompts, "handed", real)
    await tick_at(shop, start + 3.2 * 86_400)  # the next clock: the same retry key, LINE answers 409
    repeated = [c for c in platform.calls if c.endpoint == "push" and c.status == 409]
    assert repeated and repeated[0].headers["X-Line-Retry-Key"] == pushes(platform, friend)[0].headers[
        "X-Line-Retry-Key"]
    assert len(pushes(platform, friend)) == 1 and await prompts.reminders_scheduled() == 0


async def test_no_reminder_when_joining_completes_the_referral(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, **REMINDER, referral__trigger='"join"')
    start = time.time()
    await referred_friend(shop)
    assert await shop.services.program.prompts.reminders_scheduled() == 0
    await tick_at(shop, start + 5 * 86_400)
    assert pushes(shop.platform) == []


async def test_points_paid_on_joining_may_put_a_reward_in_reach(bot_with: BotWith, tmp_path: Path) -> None:
    shop = await shop_with(bot_with, tmp_path, referral__trigger='"join"', prompts__reward_in_reach="true")
    referrer, friend = await referred_friend(shop)  # 100 + 500 and 100 + 300 points: the coffee (300) for both
    for uid in (referrer, friend):
        await shop.platform.wait_for(lambda uid=uid: pushes(shop.platform, uid))
        assert len(pushes(shop.platform, uid)) == 1 and "コーヒー" in said(pushes(shop.platform, uid)[0])


# ---- the rules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, where", [
    ({"prompts__weekly_cap": "0"}, "prompts.weekly_cap"),
    ({"prompts__events": '["unboxing"]'}, "prompts.events"),
    ({"prompts__event_min_value": "{ share = 3 }"}, "prompts.event_min_value"),
    ({"prompts__friend_reminder": "1"}, "prompts.friend_reminder"),
    ({"prompts__reminder_days": "0"}, "prompts.reminder_days"),
])
def test_a_bad_prompts_setting_names_its_line(tmp_path: Path, settings: dict, where: str) -> None:
    with pytest.raises(RulesError, match=rf"line \d+ \({where}"):
        load_rules(variant(tmp_path, **settings))


def test_an_unknown_prompts_setting_is_named(tmp_path: Path) -> None:
    path = variant(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("[prompts]\n", "[prompts]\nnudge = true\n", 1),
                    encoding="utf-8")
    with pytest.raises(RulesError, match=r"line \d+ \(prompts.nudge\): unknown setting"):
        load_rules(path)
