"""Nothing twice: redelivered webhooks, duplicated events, double taps and repeated orders change nothing."""
import asyncio
import copy
import re

from linesim.platform import new_user_id, text_of
from tests.support.harness import PUBLIC, Bot, converse

INVITE = re.compile(re.escape(PUBLIC) + r"/i/([A-Z0-9]+)")


def redelivered(event: dict) -> dict:
    again = copy.deepcopy(event)
    again["deliveryContext"]["isRedelivery"] = True
    return again


async def snapshot(bot: Bot, *uids: str) -> list[dict]:
    return [(await bot.admin("GET", f"/api/v1/members/{u}"))[1] for u in uids]


async def test_every_event_delivered_again_changes_nothing(bot: Bot) -> None:
    platform = bot.platform
    a, b = new_user_id(), new_user_id()
    follow_a = platform.follow(a)
    await converse(platform, a, follow_a)
    invite = platform.text(a, "招待")
    code = INVITE.search(text_of(await converse(platform, a, invite))).group(1)
    follow_b = platform.follow(b)
    await converse(platform, b, follow_b)
    code_message = platform.text(b, f"招待コード {code} で登録します")
    await converse(platform, b, code_message)
    points = platform.text(a, "ポイント")
    await converse(platform, a, points)
    await bot.idle()

    before = await snapshot(bot, a, b)
    mark = len(platform.calls)
    for event in (follow_a, invite, follow_b, code_message, points):
        assert await platform.send(event) == 200  # a plain duplicate
        assert await platform.send(redelivered(event)) == 200  # LINE's redelivery
    await bot.idle()
    await asyncio.sleep(0.2)
    assert platform.calls[mark:] == [], "a duplicate event made the bot call LINE again"
    assert await snapshot(bot, a, b) == before


async def test_the_same_webhook_posted_concurrently_is_handled_once(bot: Bot) -> None:
    platform = bot.platform
    a = new_user_id()
    body = platform.payload(platform.follow(a))
    statuses = await asyncio.gather(*(platform.send_raw(body) for _ in range(10)))
    assert set(statuses) == {200}
    await bot.idle()
    await asyncio.sleep(0.2)
    assert len(platform.said_to(a)) == 1
    assert (await snapshot(bot, a))[0]["points"] == 100


async def test_concurrent_reports_of_one_order_pay_once(bot: Bot) -> None:
    platform = bot.platform
    a, b = new_user_id(), new_user_id()
    await converse(platform, a, platform.follow(a))
    code = INVITE.search(text_of(await converse(platform, a, platform.text(a, "invite")))).group(1)
    await converse(platform, b, platform.follow(b))
    await converse(platform, b, platform.text(b, code))
    mark = len(platform.calls)
    order = {"order_id": "dup-1", "user_id": b, "amount": 2000}
    answers = await asyncio.gather(*(bot.admin("POST", "/api/v1/conversions", order) for _ in range(20)))
    assert {status for status, _ in answers} == {200}
    assert len({str(body) for _, body in answers}) == 1, "every report of one order gets the first answer"
    a_view, b_view = await snapshot(bot, a, b)
    assert a_view["points"] == 100 + 500 and b_view["points"] == 100 + 20 + 300
    assert a_view["referrals"]["completed"] == 1
    await asyncio.sleep(0.2)
    assert len(platform.said_to(a, mark)) == 1, "the referrer was told more than once"


async def test_a_crash_between_the_two_halves_of_a_referral_is_finished_by_the_sweep(bot: Bot) -> None:
    """The friend's half landed, the referrer's did not (the process died): the settle sweep pays once."""
    platform = bot.platform
    program = bot.services.program
    a, b = new_user_id(), new_user_id()
    await converse(platform, a, platform.follow(a))
    code = INVITE.search(text_of(await converse(platform, a, platform.text(a, "invite")))).group(1)
    await converse(platform, b, platform.follow(b))
    await converse(platform, b, platform.text(b, code))

    original = program.referrals.settle  # what the order path calls

    async def dies_before_settling(friend: str) -> None:
        raise ConnectionError("process died here")

    program.referrals.settle = dies_before_settling  # type: ignore[method-assign]
    try:
        status, _ = await bot.admin("POST", "/api/v1/conversions", {"order_id": "c-1", "user_id": b, "amount": 1000})
        assert status == 500
    finally:
        program.referrals.settle = original  # type: ignore[method-assign]
    assert (await snapshot(bot, a))[0]["points"] == 100  # not paid yet
    assert await program.settle_all() == 1
    assert await program.settle_all() == 0
    a_view, b_view = await snapshot(bot, a, b)
    assert a_view["points"] == 600 and a_view["referrals"]["completed"] == 1
    assert b_view["points"] == 100 + 10 + 300
