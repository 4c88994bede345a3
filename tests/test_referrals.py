"""Attribution rules: every refusal reason, full-width codes, and block/unblock never earning twice."""
import re
import time

import pytest

from linesim.platform import new_user_id, text_of
from tests.support.harness import PUBLIC, Bot, converse

INVITE = re.compile(re.escape(PUBLIC) + r"/i/([A-Z0-9]+)")


async def code_of(bot: Bot, uid: str) -> str:
    said = await converse(bot.platform, uid, bot.platform.text(uid, "invite"))
    return INVITE.search(text_of(said)).group(1)


async def new_friend_with_code(bot: Bot) -> tuple[str, str]:
    """A member who followed and asked for their invite code."""
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    return uid, await code_of(bot, uid)


async def refusals(bot: Bot) -> dict[str, int]:
    _, stats = await bot.admin("GET", "/api/v1/stats")
    return {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("refused:")}


async def referrals_of(bot: Bot, uid: str) -> dict:
    _, member = await bot.admin("GET", f"/api/v1/members/{uid}")
    return member["referrals"]


async def send_code(bot: Bot, uid: str, text: str) -> str:
    return text_of(await converse(bot.platform, uid, bot.platform.text(uid, text)))


async def test_a_new_friend_is_attributed_with_a_full_width_spaced_lower_case_code(bot: Bot) -> None:
    a, code = await new_friend_with_code(bot)
    b = new_user_id()
    await converse(bot.platform, b, bot.platform.follow(b))
    wide = code[:4].lower() + "　" + code[4:]  # ideographic space, lower case
    wide = wide.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})  # to full width
    mark = len(bot.platform.calls)
    answer = await send_code(bot, b, f"招待コード {wide}")
    assert "300" in answer
    assert bot.platform.said_to(a, mark), "the referrer was not told"
    assert await referrals_of(bot, a) == {"invited": 1, "pending": 1, "completed": 0}


@pytest.mark.parametrize("reason", ["SELF_REFERRAL", "ALREADY_REFERRED", "EXISTING_CUSTOMER", "EXISTING_MEMBER",
                                    "UNKNOWN_CODE", "EXPIRED"])
async def test_each_refusal_has_its_reason_a_kind_answer_and_changes_nothing(bot: Bot, reason: str) -> None:
    platform = bot.platform
    a, code = await new_friend_with_code(bot)
    b = new_user_id()
    if reason == "SELF_REFERRAL":
        b = a
    elif reason == "EXISTING_MEMBER":  # a friend from before the bot: first seen through a message
        await converse(platform, b, platform.text(b, "こんにちは"))
    else:
        await converse(platform, b, platform.follow(b))
    if reason == "ALREADY_REFERRED":
        c, other_code = await new_friend_with_code(bot)
        assert "300" in await send_code(bot, b, other_code)
    if reason == "EXISTING_CUSTOMER":
        status, _ = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-" + b, "user_id": b, "amount": 500})
        assert status == 200
    if reason == "EXPIRED":
        window = bot.services.program.rules.referral_window_days
        bot.services.program.clock = lambda: time.time() + window * 86_400 + 60
    text = "ZZZZ2345" if reason == "UNKNOWN_CODE" else code
    before = await referrals_of(bot, a)
    mark = len(platform.calls)
    answer = await send_code(bot, b, text)
    expected = bot.services.texts.get("ja", f"refused_{reason}", days=7)
    assert expected in answer, answer
    assert not platform.said_to(a, mark) or a == b, "the referrer was told about a refused referral"
    assert await referrals_of(bot, a) == before
    assert (await refusals(bot)).get(reason) == 1


async def test_blocking_and_unblocking_never_earns_again_nor_makes_anyone_new(bot: Bot) -> None:
    platform = bot.platform
    a, code = await new_friend_with_code(bot)
    b = new_user_id()
    await converse(platform, b, platform.follow(b))
    for _ in range(3):
        assert await platform.send(platform.unfollow(b)) == 200
        welcome_back = await converse(platform, b, platform.follow(b, unblocked=True))
        assert "100" not in text_of(welcome_back)
    # a follow that LINE mislabels as new (isUnblocked is "not guaranteed accurate") pays nothing either
    await converse(platform, b, platform.follow(b, unblocked=False))
    _, member = await bot.admin("GET", f"/api/v1/members/{b}")
    assert member["points"] == 100
    # an old friend who only ever unblocks stays an existing member
    c = new_user_id()
    await converse(platform, c, platform.follow(c, unblocked=True))
    assert bot.services.texts.get("ja", "refused_EXISTING_MEMBER") in await send_code(bot, c, code)
    _, member = await bot.admin("GET", f"/api/v1/members/{c}")
    assert member["points"] == 0


async def test_guessing_codes_is_rate_limited(bot: Bot) -> None:
    platform = bot.platform
    a, code = await new_friend_with_code(bot)
    b = new_user_id()
    await converse(platform, b, platform.follow(b))
    limit = bot.services.program.rules.guess_max_failures
    for n in range(limit):
        assert "見つかりません" in await send_code(bot, b, f"ZZZZ{2345 + n * 11}"[:8])
    # now even the right code is not looked at until the window passes
    answer = await send_code(bot, b, code)
    assert bot.services.texts.get("ja", "refused_RATE_LIMITED") in answer
    assert await referrals_of(bot, a) == {"invited": 0, "pending": 0, "completed": 0}
    assert (await refusals(bot)).get("RATE_LIMITED") == 1


async def test_english_speakers_get_english(bot: Bot) -> None:
    platform = bot.platform
    uid = new_user_id()
    welcome = await converse(platform, uid, platform.follow(uid, language="en"))
    assert "Thanks for adding us" in text_of(welcome)
    said = await converse(platform, uid, platform.text(uid, "ＰＯＩＮＴＳ"))
    assert "Your points: 100 pt" in text_of(said)
    said = await converse(platform, uid, platform.text(uid, "what?"))
    assert "Sorry" in text_of(said) and said[-1]["quickReply"]["items"]
