"""The whole referral story, end to end: follow, invite, friend joins with the code, first purchase."""
import re
from urllib.parse import unquote

from linesim.phone import decode_qr
from linesim.platform import new_user_id, text_of
from tests.support.harness import PUBLIC, Bot, converse

INVITE = re.compile(re.escape(PUBLIC) + r"/i/([A-Z0-9]+)")
OA_MESSAGE = re.compile(r'href="https://line\.me/R/oaMessage/([^/"]+)/\?([^"]+)"')


def local(bot: Bot, url: str) -> str:
    assert url.startswith(PUBLIC)
    return bot.url + url[len(PUBLIC):]


async def points_of(bot: Bot, uid: str) -> int:
    status, body = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200, body
    return body["points"]


async def test_the_referral_story(bot: Bot) -> None:
    platform = bot.platform
    a, b = new_user_id(), new_user_id()

    welcome = await converse(platform, a, platform.follow(a))
    assert "100" in text_of(welcome)  # signup points, from the default rules
    assert await points_of(bot, a) == 100

    invite = await converse(platform, a, platform.text(a, "招待"))
    link = INVITE.search(text_of(invite))
    assert link, text_of(invite)
    code = link.group(1)
    assert a not in text_of(invite)
    card = next(m for m in invite if m["type"] == "flex")
    async with bot.http.get(local(bot, card["contents"]["hero"]["url"])) as r:  # the QR on the invite card
        assert r.status == 200 and r.content_type == "image/png"
        png = await r.read()
    decoded = decode_qr(png)
    assert decoded == link.group(0)

    async with bot.http.get(local(bot, link.group(0))) as r:
        assert r.status == 200
        page = await r.text()
    basic_id, prefill = OA_MESSAGE.search(page).groups()
    assert unquote(basic_id) == "@shokai-test" and code in unquote(prefill)
    assert a not in page

    await converse(platform, b, platform.follow(b))
    mark = len(platform.calls)
    told_b = await converse(platform, b, platform.text(b, unquote(prefill)))
    assert "300" in text_of(told_b)  # what the friend will get
    told_a = await platform.wait_for(lambda: platform.said_to(a, mark))
    assert told_a, "the referrer was not told"
    status, member = await bot.admin("GET", f"/api/v1/members/{a}")
    assert member["referrals"] == {"invited": 1, "pending": 1, "completed": 0}

    mark = len(platform.calls)
    status, answer = await bot.admin("POST", "/api/v1/conversions",
                                     {"order_id": "order-1", "user_id": b, "amount": 3000})
    assert status == 200, answer
    assert answer == {"order_id": "order-1", "points_awarded": 30 + 300, "referral": {"status": "completed"}}
    assert await platform.wait_for(lambda: platform.said_to(a, mark)), "no push about the completed referral"
    assert await points_of(bot, a) == 100 + 500
    assert await points_of(bot, b) == 100 + 30 + 300

    again_status, again = await bot.admin("POST", "/api/v1/conversions",
                                          {"order_id": "order-1", "user_id": b, "amount": 3000})
    assert (again_status, again) == (status, answer)
    assert await points_of(bot, a) == 600 and await points_of(bot, b) == 430
    status, member = await bot.admin("GET", f"/api/v1/members/{a}")
    assert member["referrals"] == {"invited": 1, "pending": 0, "completed": 1}

    shown = await converse(platform, a, platform.text(a, "ポイント"))
    assert "600" in text_of(shown)
