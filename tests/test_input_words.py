"""Input forgiveness: the word table with its variants and typos, emoji-only messages, long texts, never an echo;
and the loading animation, shown only while a slow answer is made, before a reply in a one-to-one chat."""
from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest

from bot.chat.keywords import MAX_MATCH_CHARS, WordTable, fold, is_emoji_only, table
from bot.config import ASSETS
from handlers import common
from linesim.platform import new_user_id, text_of
from tests.support.harness import Bot, converse


@pytest.mark.parametrize("typed, intent", [
    # points
    ("ポイント", "points"), ("ﾎﾟｲﾝﾄ", "points"), ("ぽいんと", "points"), ("ポイント！", "points"), ("ポイント?", "points"),
    (" ポイント ", "points"), ("ポイントください", "points"), ("ポイントを見せて", "points"), ("ポイソト", "points"),
    ("ボイント", "points"), ("point", "points"), ("POINTS", "points"), ("Ｐｔ", "points"), ("pts", "points"),
    ("poimts", "points"), ("points please", "points"), ("残高", "points"),
    # invite
    ("招待", "invite"), ("しょうたい", "invite"), ("ショウタイ", "invite"), ("invite", "invite"),
    ("Invitation", "invite"), ("invte", "invite"), ("invitaion", "invite"), ("招待したい", "invite"),
    # rewards
    ("特典", "rewards"), ("とくてん", "rewards"), ("特点", "rewards"), ("reward", "rewards"), ("Rewards", "rewards"),
    ("rewrds", "rewards"), ("reawrds", "rewards"),
    # help
    ("へるぷ", "help"), ("ヘルプ", "help"), ("help", "help"), ("HELP!", "help"), ("？", "help"), ("?", "help"),
    ("使い方", "help"), ("つかいかた", "help"), ("hlep", "help"),
    # coupons, profile, cancel
    ("クーポン", "coupons"), ("my coupons", "coupons"), ("coupns", "coupons"),
    ("プロフィール", "profile"), ("ぷろふぃーる", "profile"), ("誕生日", "profile"), ("settings", "profile"),
    ("設定", "profile"), ("キャンセル", "cancel"), ("ｷｬﾝｾﾙ", "cancel"), ("cancel", "cancel"),
    # not keywords
    ("こんにちは", None), ("hello", None), ("ポイントって何？どうやって貯めるの", None), ("pt!!!!x", None),
    ("p", None), ("abc", None), ("", None), ("ポイント" + "あ" * 600, None),
])
def test_the_word_table_forgives(typed: str, intent: str | None) -> None:
    assert table().intent_of(typed) == intent


def test_every_quick_reply_word_names_its_intent() -> None:
    """The words the quick replies send must be understood, in every locale."""
    for path in sorted((ASSETS / "locales").glob("*.toml")):
        texts = tomllib.loads(path.read_text(encoding="utf-8"))
        for key, intent in (("word_invite", "invite"), ("word_points", "points"), ("word_rewards", "rewards"),
                            ("word_help", "help"), ("word_coupons", "coupons"), ("word_gift", "gift")):
            if key in texts:
                assert table().intent_of(texts[key]) == intent, (path.name, key, texts[key])


def test_a_word_under_two_intents_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "words.toml"
    path.write_text('points = ["ポイント"]\nrewards = ["ぽいんと"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="both points and rewards"):
        WordTable(path)


def test_long_texts_are_cut_before_matching() -> None:
    assert len(fold("x" * 10_000)) <= MAX_MATCH_CHARS


@pytest.mark.parametrize("typed, emoji_only", [
    ("😊", True), ("👍👍", True), (" 🎉 ✨ ", True), ("👨\u200d👩\u200d👧", True), ("🇯🇵", True), ("👋🏽", True),
    ("❤️", True), ("ありがとう😊", False), ("ok👍", False), ("", False), ("   ", False), ("!", False),
])
def test_emoji_only(typed: str, emoji_only: bool) -> None:
    assert is_emoji_only(typed) is emoji_only


def test_line_emoji_placeholders_count_as_emoji() -> None:
    assert is_emoji_only("$$", [(0, 1), (1, 1)])
    assert not is_emoji_only("$ hi", [(0, 1)])


async def test_typed_variants_reach_their_handler(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    for typed in ("ﾎﾟｲﾝﾄ", "ぽいんと", "ポイントを見せて", "Points!"):
        answer = await converse(platform, uid, platform.text(uid, typed))
        assert "100" in text_of(answer) and "ポイント" in answer[0]["altText"], typed  # the member card
    assert "招待" in text_of(await converse(platform, uid, platform.text(uid, "invte")))
    assert not platform.violations


async def test_emoji_only_gets_the_kind_answer_and_nothing_is_echoed(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    sticker = await converse(platform, uid, platform.sticker(uid))
    emoji = await converse(platform, uid, platform.text(uid, "😊🎉"))
    assert emoji[0]["text"] == sticker[0]["text"]
    weird = "<script>" + "ほげ" * 3000
    answer = await converse(platform, uid, platform.text(uid, weird))
    assert "<script>" not in text_of(answer) and "ほげ" not in text_of(answer)
    assert not platform.violations


async def test_loading_shown_while_a_slow_answer_is_made_in_a_one_to_one_chat(bot: Bot, monkeypatch) -> None:
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    # a prompt answer (the usual: milliseconds) calls no dots at all
    await converse(platform, uid, platform.text(uid, "ポイント"))
    assert [c for c in platform.calls if c.endpoint == "loading"] == []

    monkeypatch.setattr(common, "LOADING_AFTER_SECONDS", 0)  # every answer "slow": the dots come first
    await converse(platform, uid, platform.text(uid, "ポイント"))
    await converse(platform, uid, platform.text(uid, "特典"))
    loading = [c for c in platform.calls if c.endpoint == "loading"]
    assert [c.body for c in loading] == [{"chatId": uid, "loadingSeconds": 5}] * 2
    assert all(c.status == 202 for c in loading)

    # a quick answer shows none
    await converse(platform, uid, platform.text(uid, "ヘルプ"))
    assert len([c for c in platform.calls if c.endpoint == "loading"]) == 2
    assert not platform.violations


async def test_no_loading_in_a_group_or_when_the_answer_will_be_a_push(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    group = {"type": "group", "groupId": "C" + "1" * 32, "userId": uid}
    await converse(platform, uid, platform.text(uid, "ポイント", source=group))
    old = int(time.time() * 1000) - 30 * 60 * 1000  # redelivered after its reply token died: a push
    pushed = await converse(platform, uid, platform.text(uid, "ポイント", timestamp=old))
    assert pushed
    assert [c for c in platform.calls if c.endpoint == "loading"] == []
    assert not platform.violations


async def test_a_failing_loading_call_never_fails_the_answer(bot: Bot, monkeypatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("LINE is having a bad day")

    monkeypatch.setattr(bot.services.line, "show_loading", broken)
    platform = bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    answer = await converse(platform, uid, platform.text(uid, "ポイント"))
    assert "100" in text_of(answer)
    assert not platform.violations
