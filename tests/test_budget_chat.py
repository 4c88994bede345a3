"""[budget] in chat and on the invite page: staff are told once at 80% and once at 100%; from the moment the cap
is reached the invite card (ja and en) and the invite page (in headless Chromium) say rewards wait instead of
promising them now; an owner's release through the admin API pays a held completion once."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import WORKER
from linesim.platform import new_user_id, text_of
from tests.support.dashboard import chromium as launch_chromium
from tests.support.harness import PUBLIC, Bot, BotWith, converse
from tests.test_budget import NO_MILESTONES, with_cap

STAFF = "U" + "7" * 32
CAP = 4000  # five completions of ¥800: the 4th passes 80%, the 5th reaches it, the 6th is held
INVITE = re.compile(re.escape(PUBLIC) + r"/i/([A-Z0-9]+)")


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Headless Chromium, as every browser test launches it (skipped where there is none)."""
    async with launch_chromium() as launched:
        yield launched


@pytest.fixture
async def shop(bot_with: BotWith, tmp_path: Path) -> Bot:
    rules = tmp_path / "rules.toml"
    text = re.sub(r'^quiet_hours = .*$', 'quiet_hours = ""', NO_MILESTONES, count=1, flags=re.M)  # alerts at once
    rules.write_text(with_cap(text, CAP), encoding="utf-8")
    bot = await bot_with(rewards_config=rules, staff_user_ids=frozenset({STAFF}))
    await converse(bot.platform, STAFF, bot.platform.follow(STAFF))
    return bot


async def invite_card(bot: Bot, uid: str) -> str:
    return text_of(await converse(bot.platform, uid, bot.platform.text(uid, "招待")))


async def completed_referral(bot: Bot, n: int) -> tuple[str, str]:
    """A referrer and a friend who joined with their code and bought: the referral completes (or is held)."""
    platform = bot.platform
    referrer, friend = new_user_id(), new_user_id()
    await converse(platform, referrer, platform.follow(referrer))
    code = INVITE.search(await invite_card(bot, referrer)).group(1)  # type: ignore[union-attr]
    await converse(platform, friend, platform.follow(friend))
    await converse(platform, friend, platform.text(friend, code))
    status, _ = await bot.admin("POST", "/api/v1/conversions", {"order_id": f"o-{n}", "user_id": friend, "amount": 3000})
    assert status == 200
    await bot.idle()
    return referrer, friend


def alerts(bot: Bot, key: str) -> int:
    """How many of that alert staff got: its text up to the first value it takes."""
    cut = "\x00"
    wanted = bot.services.texts.get("ja", key, month=cut, spent=cut, cap=cut, share=cut, held=cut).split(cut)[0]
    return sum(text_of([m]).startswith(wanted) for m in bot.platform.said_to(STAFF))


async def test_staff_are_told_once_at_80_and_100_and_the_card_and_page_stop_promising(shop: Bot, chromium: Any) -> None:
    bot, texts = shop, shop.services.texts
    paused_ja, paused_en = texts.get("ja", "offer_budget_paused"), texts.get("en", "offer_budget_paused")
    pairs = [await completed_referral(bot, n) for n in range(3)]
    referrer = pairs[0][0]
    assert paused_ja not in await invite_card(bot, referrer)
    assert alerts(bot, "budget_alert_referral_80") == 0
    pairs.append(await completed_referral(bot, 3))  # ¥3,200 of ¥4,000
    assert alerts(bot, "budget_alert_referral_80") == 1 and alerts(bot, "budget_alert_referral_100") == 0
    assert paused_ja not in await invite_card(bot, referrer)  # one more still fits: still promised
    pairs.append(await completed_referral(bot, 4))  # ¥4,000: reached
    assert alerts(bot, "budget_alert_referral_100") == 1
    pairs.append(await completed_referral(bot, 5))  # held, BUDGET
    _, budget = await bot.admin("GET", "/api/v1/budget")
    assert budget["budgets"]["referral"] | {"month": ""} == {
        "kind": "referral", "month": "", "spent_yen": CAP, "cap_yen": CAP, "share": 1.0, "state": "reached", "held": 1}
    assert [h["friend_id"] for h in budget["held"]] == [pairs[5][1]]
    _, stats = await bot.admin("GET", "/api/v1/stats")
    assert stats["report"]["budget"]["referral"]["state"] == "reached"
    # the clock's tick and more orders tell nobody again
    await bot.app[WORKER].clock.tick()
    await completed_referral(bot, 6)
    assert alerts(bot, "budget_alert_referral_80") == 1 and alerts(bot, "budget_alert_referral_100") == 1

    # the staff card of today's numbers: yen beside the points, and the budget reached
    numbers = text_of(await converse(bot.platform, STAFF, bot.platform.text(STAFF, "今日の数字")))
    _, report = await bot.admin("GET", "/api/v1/stats?days=1")
    points = report["report"]["points"]
    assert f"付与 {points['issued']:,}(¥{points['issued_yen']:,})" in numbers, numbers  # ¥1 a point
    assert f"未使用残高 {points['outstanding']:,}(¥{points['outstanding_yen']:,})" in numbers
    assert points["issued"] == points["issued_yen"] >= 5 * 800
    assert texts.get("ja", "staff_numbers_budget_reached", spent=f"{CAP:,}", cap=f"{CAP:,}", share="100.0%",
                     held=2) in numbers

    # the invite card, in Japanese and in English, says rewards wait
    card = await invite_card(bot, referrer)
    assert paused_ja in card, card
    english = new_user_id()
    await converse(bot.platform, english, bot.platform.follow(english, language="en"))
    assert paused_en in await invite_card(bot, english)
    # and the invite page, in headless Chromium, in both languages
    code = INVITE.search(card).group(1)  # type: ignore[union-attr]
    for locale, paused in (("ja-JP", paused_ja), ("en-US", paused_en)):
        context = await chromium.new_context(locale=locale)
        page = await context.new_page()
        response = await page.goto(f"{bot.url}/i/{code}")
        assert response is not None and response.status == 200
        assert paused in await page.locator("#campaign").inner_text()
        await context.close()

    # an owner releases the held completions: paid once, however often released
    held = pairs[5][1]
    for _ in range(2):
        status, body = await bot.admin("POST", "/api/v1/budget/release", {"friend_ids": [held]})
        assert status == 200
    entries = [e for e in await bot.services.program.ledger(held) if e.get("op") == "referral:friend"]
    assert len(entries) == 1
    for body, code in (({"friend_ids": ["nobody"]}, "INVALID_USER_ID"), ({"friend_ids": "all"}, "INVALID_FIELD"),
                       ({"friend_ids": [1]}, "INVALID_FIELD"), ({"everyone": True}, "UNKNOWN_FIELD"),
                       ([held], "INVALID_BODY")):
        before = (await bot.admin("GET", "/api/v1/budget"))[1]
        status, bad = await bot.admin("POST", "/api/v1/budget/release", body)
        assert status == 400 and bad["error"]["code"] == code, (body, bad)
        assert (await bot.admin("GET", "/api/v1/budget"))[1] == before  # nothing released


async def test_on_joining_a_completion_held_for_the_budget_tells_both_sides_it_comes_later(bot_with: BotWith,
                                                                                            tmp_path: Path) -> None:
    rules = tmp_path / "join.toml"
    text = re.sub(r'^trigger = "first_purchase"', 'trigger = "join"', NO_MILESTONES, count=1, flags=re.M)
    rules.write_text(with_cap(text, 800), encoding="utf-8")  # one completion a month
    bot = await bot_with(rewards_config=rules)
    platform, texts = bot.platform, bot.services.texts
    referrer = new_user_id()
    await converse(platform, referrer, platform.follow(referrer))
    code = INVITE.search(await invite_card(bot, referrer)).group(1)  # type: ignore[union-attr]
    paid, held = new_user_id(), new_user_id()
    for friend in (paid, held):
        await converse(platform, friend, platform.follow(friend))
    assert "300" in text_of(await converse(platform, paid, platform.text(paid, code)))
    await bot.idle()
    mark = len(platform.calls)
    answer = text_of(await converse(platform, held, platform.text(held, code)))
    await bot.idle()
    assert texts.get("ja", "referral_ok_held", friend_points="300") in answer
    assert "プレゼントしました" not in answer  # not the promise of points paid now
    told = text_of(platform.said_to(referrer, mark))
    assert texts.get("ja", "referral_ok_referrer_held", referrer_points="500") in told
    program = bot.services.program
    assert await program.points_ledger.entry(held, "referral:friend") is None
    assert await program.budget.is_held(held)
    friends = (await program.referral_status(referrer)).friends
    assert [f.needs for f in friends if f.user_id == held] == ["BUDGET"]  # the status card: paid from next month
    card = text_of(await converse(platform, referrer, platform.text(referrer, "紹介状況")))
    assert texts.get("ja", "flex_refs_state_BUDGET") in card, card
    status, body = await bot.admin("POST", "/api/v1/budget/release")
    assert status == 200 and [r["friend_id"] for r in body["released"]] == [held]
    assert await program.points_ledger.entry(held, "referral:friend") is not None
    assert (await program.budget.status()).spent_yen == 1600  # the owner's release: past the cap, counted
