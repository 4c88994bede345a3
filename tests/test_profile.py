"""プロフィール: birthday by LINE's date picker then a confirmation (once), the nickname step with its cancel
word and refusals, the language preference winning over LINE's, and profile points paid once."""
from __future__ import annotations

from typing import Any

import pytest

from bot.chat import conversation
from handlers.profile import clean_nickname
from linesim.platform import Platform, new_user_id, text_of
from tests.support.harness import Bot, converse


def actions(messages: list[dict]) -> list[dict[str, Any]]:
    """The quick-reply actions under the last message."""
    return [item["action"] for item in (messages[-1].get("quickReply") or {}).get("items", [])]


def action(messages: list[dict], label: str) -> dict[str, Any]:
    found = [a for a in actions(messages) if a["label"] == label]
    assert found, f"no {label!r} among {[a['label'] for a in actions(messages)]}"
    return found[0]


async def tap(platform: Platform, uid: str, messages: list[dict], label: str, **params: str) -> list[dict]:
    chosen = action(messages, label)
    assert chosen["type"] in ("postback", "datetimepicker")
    return await converse(platform, uid, platform.postback(uid, chosen["data"], params or None))


async def points_of(bot: Bot, uid: str) -> int:
    status, body = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200, body
    return int(body["points"])


async def joined(bot: Bot, language: str = "ja") -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid, language=language))
    return uid


async def test_birthday_by_picker_confirmed_then_saved_once_with_profile_points_once(bot: Bot) -> None:
    platform = bot.platform
    uid = await joined(bot)
    start = await points_of(bot, uid)

    card = await converse(platform, uid, platform.text(uid, "プロフィール"))
    assert "誕生日" in text_of(card) and "未設定" in text_of(card)
    picker = action(card, "誕生日を設定")
    assert picker["type"] == "datetimepicker" and picker["mode"] == "date"
    assert picker["min"] <= picker["initial"] <= picker["max"]

    confirm = await tap(platform, uid, card, "誕生日を設定", date="1990-04-12")
    assert "1990/04/12 でよろしいですか？" in text_of(confirm)
    assert await bot.services.program.member(uid) and (await bot.services.program.member(uid)).birthday is None

    again = await tap(platform, uid, confirm, "いいえ")  # "no": nothing saved, the picker offered again
    assert (await bot.services.program.member(uid)).birthday is None
    confirm = await tap(platform, uid, again, "誕生日を設定", date="1990-04-12")
    saved = await tap(platform, uid, confirm, "はい")
    assert "04/12" in text_of(saved)
    assert (await bot.services.program.member(uid)).birthday == "04-12"
    assert await points_of(bot, uid) == start, "birthday alone does not complete the profile"

    # the language choice completes the profile: its points, once
    card = await converse(platform, uid, platform.text(uid, "設定"))
    english = await tap(platform, uid, card, "English")
    assert "Profile complete" in text_of(english) and "50" in text_of(english)
    assert await points_of(bot, uid) == start + 50
    card = await converse(platform, uid, platform.text(uid, "profile"))
    back = await tap(platform, uid, card, "日本語")
    assert "プロフィール完成" not in text_of(back)
    assert await points_of(bot, uid) == start + 50

    # a second birthday is refused kindly, with a way to change it
    second = await converse(platform, uid, platform.postback(uid, picker["data"], {"date": "1985-01-01"}))
    assert "スタッフ" in text_of(second)
    stale_yes = action(confirm, "はい")["data"]  # the old confirm button, tapped again
    await converse(platform, uid, platform.postback(uid, stale_yes))
    assert (await bot.services.program.member(uid)).birthday == "04-12"
    assert not platform.violations


async def test_picker_dates_outside_the_range_or_missing_are_refused(bot: Bot) -> None:
    platform = bot.platform
    uid = await joined(bot)
    card = await converse(platform, uid, platform.text(uid, "誕生日"))
    future = await tap(platform, uid, card, "誕生日を設定", date="2999-01-01")
    assert "選べません" in text_of(future)
    missing = await converse(platform, uid, platform.postback(uid, action(card, "誕生日を設定")["data"]))
    assert "読み取れません" in text_of(missing)
    assert (await bot.services.program.member(uid)).birthday is None
    assert not platform.violations


async def test_nickname_flow_with_bad_nicknames_cancel_and_consent(bot: Bot) -> None:
    platform = bot.platform
    uid = await joined(bot)
    card = await converse(platform, uid, platform.text(uid, "プロフィール"))
    # consent without a nickname is refused
    ask = await tap(platform, uid, card, "ニックネームを設定")
    assert "20文字" in text_of(ask)
    assert await conversation.pending(bot.services.redis, uid) == "nickname"

    too_long = await converse(platform, uid, platform.text(uid, "あ" * 21))
    assert "20文字まで" in text_of(too_long) and "あ" * 21 not in text_of(too_long)
    url = await converse(platform, uid, platform.text(uid, "見てね https://spam.example"))
    assert "URL" in text_of(url) and "spam" not in text_of(url)
    control = await converse(platform, uid, platform.text(uid, "ab\u202ecd"))
    assert "使えない文字" in text_of(control)
    assert (await bot.services.program.member(uid)).nickname is None

    cancelled = await converse(platform, uid, platform.text(uid, "ｷｬﾝｾﾙ"))
    assert "やめました" in text_of(cancelled)
    assert await conversation.pending(bot.services.redis, uid) is None
    after = await converse(platform, uid, platform.text(uid, "たろう"))  # no step: ordinary text again
    assert "たろう" not in text_of(after)
    assert (await bot.services.program.member(uid)).nickname is None

    ask = await tap(platform, uid, card, "ニックネームを設定")
    saved = await converse(platform, uid, platform.text(uid, "  ＴＡＲＯ　　さん "))  # NFKC, spaces collapsed
    assert "「TARO さん」" in text_of(saved)
    member = await bot.services.program.member(uid)
    assert member.nickname == "TARO さん" and not member.nickname_consent
    shown = await tap(platform, uid, saved, "ランキングに表示する")
    assert "表示します" in text_of(shown)
    assert (await bot.services.program.member(uid)).nickname_consent
    card = await converse(platform, uid, platform.text(uid, "プロフィール"))
    await tap(platform, uid, card, "ランキングに出さない")
    assert not (await bot.services.program.member(uid)).nickname_consent
    assert not platform.violations


async def test_a_menu_word_ends_the_nickname_step(bot: Bot) -> None:
    platform = bot.platform
    uid = await joined(bot)
    card = await converse(platform, uid, platform.text(uid, "プロフィール"))
    await tap(platform, uid, card, "ニックネームを設定")
    points = await converse(platform, uid, platform.text(uid, "ぽいんと"))
    assert "ポイント" in text_of(points)
    assert await conversation.pending(bot.services.redis, uid) is None
    assert (await bot.services.program.member(uid)).nickname is None
    nothing = await converse(platform, uid, platform.text(uid, "キャンセル"))
    assert "ありません" in text_of(nothing)
    assert not platform.violations


async def test_consent_needs_a_nickname_first(bot: Bot) -> None:
    from handlers.profile import ShowNickname
    from tests.support.harness import pack

    platform = bot.platform
    uid = await joined(bot)
    refused = await converse(platform, uid, platform.postback(uid, pack(ShowNickname(True))))
    assert "先にニックネーム" in text_of(refused)
    assert not (await bot.services.program.member(uid)).nickname_consent
    assert not platform.violations


async def test_the_chosen_language_wins_over_the_line_profile(bot: Bot) -> None:
    platform = bot.platform
    uid = await joined(bot, language="ja")
    card = await converse(platform, uid, platform.text(uid, "プロフィール"))
    english = await tap(platform, uid, card, "English")
    assert "English" in text_of(english) and "Birthday" in text_of(english)
    help_text = await converse(platform, uid, platform.text(uid, "ヘルプ"))  # typed in Japanese, answered in English
    assert "what I can do" in text_of(help_text), text_of(help_text)
    member = await bot.services.program.member(uid)
    assert member.language == "en" and member.language_chosen

    # and the other way: an English LINE app, Japanese chosen
    other = await joined(bot, language="en")
    card = await converse(platform, other, platform.text(other, "profile"))
    await tap(platform, other, card, "日本語")
    assert (await bot.services.program.member(other)).language == "ja"
    assert not platform.violations


@pytest.mark.parametrize("typed, expected", [
    ("たろう", "たろう"), ("ＴＡＲＯ", "TARO"), (" a  b ", "a b"), ("🍣好き", "🍣好き"), ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),
    ("x" * 20, "x" * 20), ("x" * 21, None), ("", None), ("   ", None), ("a\x00b", None), ("a\u200bb", None),
    ("http://x", None), ("www.example", None), ("shop.com", None), ("ｈｔｔｐｓ：//x", None),
])
def test_nickname_rules(typed: str, expected: str | None) -> None:
    assert clean_nickname(typed)[0] == expected
