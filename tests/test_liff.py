"""Invites through LIFF: the ID token verified with LINE (the stand-in's /oauth2/v2.1/verify), attribution before
and after the follow, every refusal, forged / other-channel / expired tokens, a posted user id ignored, replays,
LINE's verify down, shares, and the funnel in the stats. Everything through HTTP and signed webhooks."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, Settings
from bot.line.links import invite_link
from linesim.platform import LIFF_ID, LOGIN_CHANNEL_ID, new_user_id, text_of
from rewards import keys
from tests.support.harness import PUBLIC, Bot, BotWith, converse

LIFF_LINK = re.compile(r"https://liff\.line\.me/" + re.escape(LIFF_ID) + r"\?code=([A-Z0-9]{8})")
LIFF = {"liff_id": LIFF_ID, "line_login_channel_id": LOGIN_CHANNEL_ID}


@pytest.fixture
async def liff_bot(bot_with: BotWith) -> Bot:
    return await bot_with(**LIFF)


async def referrer(bot: Bot) -> tuple[str, str]:
    """A member who followed and asked for their invite: the card carries the LIFF link."""
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    said = text_of(await converse(bot.platform, uid, bot.platform.text(uid, "招待")))
    match = LIFF_LINK.search(said)
    assert match, f"no LIFF link in the invite card: {said}"
    assert f"{PUBLIC}/i/" not in said
    return uid, match.group(1)


async def post(bot: Bot, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    async with bot.http.post(bot.url + path, json=body, headers=headers) as response:
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, await response.text()


async def attribution(bot: Bot, uid: str, code: str, **extra: Any) -> tuple[int, Any]:
    token = extra.pop("token", None) or bot.platform.id_token(uid)
    return await post(bot, "/liff/v1/attribution", {"id_token": token, "code": code, **extra})


async def stats(bot: Bot) -> dict:
    _, body = await bot.admin("GET", "/api/v1/stats")
    assert isinstance(body, dict)
    return body


async def state_of(bot: Bot, uid: str) -> dict:
    """Everything the bot keeps about a person: member record, referral, pre-follow record."""
    redis = bot.services.redis
    return {"member": await redis.hgetall(keys.member(uid)), "ref": await redis.hgetall(keys.referral(uid)),
            "pre": await redis.get(keys.pre_follow(uid)), "guesses": await redis.get(keys.guesses(uid))}


# ---- settings and links --------------------------------------------------------------------------
def test_liff_id_without_the_login_channel_stops_start_up_with_one_line() -> None:
    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.example",
           "LIFF_ID": "1234567890-AbCdEfGh"}
    with pytest.raises(ConfigError, match="LINE_LOGIN_CHANNEL_ID") as raised:
        Settings.from_env(env)
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="LIFF_ID"):
        Settings.from_env({**env, "LIFF_ID": "not a liff id", "LINE_LOGIN_CHANNEL_ID": "1234567890"})
    settings = Settings.from_env({**env, "LINE_LOGIN_CHANNEL_ID": "1234567890"})
    assert invite_link(settings, "ABCDEFGH") == "https://liff.line.me/1234567890-AbCdEfGh?code=ABCDEFGH"
    plain = Settings.from_env({k: v for k, v in env.items() if k != "LIFF_ID"})
    assert invite_link(plain, "ABCDEFGH") == "https://x.example/i/ABCDEFGH"


async def test_the_qr_encodes_the_liff_link(liff_bot: Bot) -> None:
    from linesim.phone import decode_qr

    _, code = await referrer(liff_bot)
    async with liff_bot.http.get(f"{liff_bot.url}/qr/{code}.png") as response:
        png = await response.read()
    decoded = decode_qr(png)
    if decoded is not None:  # OpenCV is in the test extras; without it the QR cannot be read here
        assert decoded == f"https://liff.line.me/{LIFF_ID}?code={code}"


# ---- the story -------------------------------------------------------------------------------------
async def test_before_the_follow_awaiting_then_pending_at_the_follow_and_both_told(liff_bot: Bot) -> None:
    bot, platform = liff_bot, liff_bot.platform
    a, code = await referrer(bot)
    b = new_user_id()
    status, answer = await attribution(bot, b, code)
    assert status == 200 and answer["status"] == "awaiting_follow" and "reason" not in answer, answer
    assert answer["message"]
    assert (await state_of(bot, b))["member"] == {}, "nothing about the person before they follow"
    again = await attribution(bot, b, code)
    assert again == (200, answer), "the same request again answers the same"
    mark = len(platform.calls)
    said = text_of(await converse(platform, b, platform.follow(b)))
    welcome = bot.services.texts.get("ja", "referral_ok", friend_points=bot.services.program.rules.friend_points)
    assert welcome in said, said  # the follow's reply carries the welcome and the attribution
    await platform.wait_for(lambda: platform.said_to(a, mark))
    assert platform.said_to(a, mark), "the referrer was not told"
    _, member = await bot.admin("GET", f"/api/v1/members/{a}")
    assert member["referrals"] == {"invited": 1, "pending": 1, "completed": 0}
    assert (await state_of(bot, b))["pre"] is None, "the waiting is over"
    replay = await attribution(bot, b, code)
    assert replay[0] == 200 and replay[1]["status"] == "pending"
    numbers = await stats(bot)
    assert numbers["report"]["liff_attributions"] == 1
    assert numbers["report"]["funnel"]["awaiting_follow"] == 1
    # a purchase completes it as any referral
    status, order = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-" + b, "user_id": b, "amount": 900})
    assert status == 200 and order["referral"]["status"] == "completed", order


async def test_a_friend_who_followed_is_attributed_at_once_and_told_by_push(liff_bot: Bot) -> None:
    bot, platform = liff_bot, liff_bot.platform
    a, code = await referrer(bot)
    b = new_user_id()
    await converse(platform, b, platform.follow(b))
    mark = len(platform.calls)
    status, answer = await attribution(bot, b, code)
    assert status == 200 and answer["status"] == "pending", answer
    await platform.wait_for(lambda: platform.said_to(a, mark) and platform.said_to(b, mark))
    pushes = [c for c in platform.calls[mark:] if c.endpoint == "push" and c.status == 200 and b in c.to]
    assert len(pushes) == 1 and "X-Line-Retry-Key" in pushes[0].headers
    assert platform.said_to(a, mark)
    before = await state_of(bot, b)
    mark = len(platform.calls)
    assert (await attribution(bot, b, code))[1]["status"] == "pending"
    assert await state_of(bot, b) == before
    assert not [c for c in platform.calls[mark:] if c.endpoint == "push" and c.status == 200], "told twice"
    assert (await stats(bot))["report"]["liff_attributions"] == 1


# ---- refusals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["SELF_REFERRAL", "ALREADY_REFERRED", "EXISTING_CUSTOMER", "EXISTING_MEMBER",
                                    "UNKNOWN_CODE", "EXPIRED", "RATE_LIMITED"])
async def test_every_refusal_of_chat_with_its_reason(liff_bot: Bot, reason: str) -> None:
    bot, platform = liff_bot, liff_bot.platform
    a, code = await referrer(bot)
    b = a if reason == "SELF_REFERRAL" else new_user_id()
    if reason == "EXISTING_MEMBER":  # a friend from before: first seen through a message
        await converse(platform, b, platform.text(b, "こんにちは"))
    elif reason != "SELF_REFERRAL":
        await converse(platform, b, platform.follow(b))
    if reason == "ALREADY_REFERRED":
        _, other = await referrer(bot)
        assert (await attribution(bot, b, other))[1]["status"] == "pending"
    if reason == "EXISTING_CUSTOMER":
        await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-" + b, "user_id": b, "amount": 500})
    if reason == "EXPIRED":
        window = bot.services.program.rules.referral_window_days
        bot.services.program.clock = lambda: time.time() + window * 86_400 + 60
    if reason == "RATE_LIMITED":
        for _ in range(bot.services.program.rules.guess_max_failures):
            assert (await attribution(bot, b, "ZZZZ2345"))[1]["reason"] == "UNKNOWN_CODE"
    before = await state_of(bot, b)
    status, answer = await attribution(bot, b, "ZZZZ2345" if reason == "UNKNOWN_CODE" else code)
    assert status == 200 and answer["status"] == "refused" and answer["reason"] == reason, answer
    after = await state_of(bot, b)
    if reason == "UNKNOWN_CODE":  # the one thing a refusal writes: the guess counter, as in chat
        before.pop("guesses"), after.pop("guesses")
    assert after == before
    assert (await stats(bot))["report"]["referrals"]["refused"].get(reason, 0) >= 1


@pytest.mark.parametrize("reason", ["SELF_REFERRAL", "UNKNOWN_CODE", "RATE_LIMITED", "ALREADY_REFERRED"])
async def test_refusals_before_the_follow(liff_bot: Bot, reason: str) -> None:
    bot = liff_bot
    a, code = await referrer(bot)
    b = new_user_id()
    if reason == "SELF_REFERRAL":  # a code owner is always known; before the follow only by a forged record
        await bot.services.redis.hset(keys.codes(code), code, b)
    if reason == "RATE_LIMITED":
        for _ in range(bot.services.program.rules.guess_max_failures):
            await attribution(bot, b, "ZZZZ2345")
    if reason == "ALREADY_REFERRED":  # the first code wins while the person waits for their follow
        _, first = await referrer(bot)
        assert (await attribution(bot, b, first))[1]["status"] == "awaiting_follow"
    status, answer = await attribution(bot, b, "ZZZZ2345" if reason == "UNKNOWN_CODE" else code)
    assert status == 200 and answer == {"status": "refused", "reason": reason, "message": answer["message"]}
    assert (await bot.services.redis.hgetall(keys.member(b))) == {}


# ---- tokens ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["forged", "other_channel", "expired", "garbage"])
async def test_a_token_line_refuses_is_401_and_changes_nothing(liff_bot: Bot, kind: str) -> None:
    bot, platform = liff_bot, liff_bot.platform
    _, code = await referrer(bot)
    b = new_user_id()
    token = {"forged": platform.id_token(b)[:-4] + "AAAA", "other_channel": platform.id_token(b, channel_id="1999"),
             "expired": platform.id_token(b, expires_in=-10), "garbage": "not-a-jwt"}[kind]
    status, answer = await attribution(bot, b, code, token=token)
    assert status == 401 and answer["error"]["code"] == "INVALID_ID_TOKEN", answer
    assert await state_of(bot, b) == {"member": {}, "ref": {}, "pre": None, "guesses": None}
    assert (await stats(bot)).get("awaiting_follow", 0) == 0


async def test_a_user_id_the_page_posts_is_ignored(liff_bot: Bot) -> None:
    bot, platform = liff_bot, liff_bot.platform
    _, code = await referrer(bot)
    victim, attacker = new_user_id(), new_user_id()
    await converse(platform, victim, platform.follow(victim))
    status, answer = await attribution(bot, attacker, code, user_id=victim, sub=victim, userId=victim)
    assert status == 200 and answer["status"] == "awaiting_follow", answer  # the token's sub: the attacker
    assert await bot.services.redis.hgetall(keys.referral(victim)) == {}
    assert await bot.services.redis.get(keys.pre_follow(attacker)) is not None


async def test_line_verify_down_is_a_clear_503_and_changes_nothing(liff_bot: Bot) -> None:
    bot, platform = liff_bot, liff_bot.platform
    _, code = await referrer(bot)
    b = new_user_id()
    platform.verify_down = True
    status, answer = await attribution(bot, b, code)
    assert status == 503 and answer["error"]["code"] == "LINE_UNAVAILABLE", answer
    platform.verify_down = False
    assert await state_of(bot, b) == {"member": {}, "ref": {}, "pre": None, "guesses": None}
    assert (await attribution(bot, b, code))[1]["status"] == "awaiting_follow"


async def test_line_verify_unreachable_is_a_clear_503(bot_with: BotWith) -> None:
    bot = await bot_with(**LIFF)
    _, code = await referrer(bot)
    # a second web process whose LINE is a closed port (same Redis): the verify call cannot connect
    dead = await bot_with(run_worker=False, **LIFF, line_api_base_url="http://127.0.0.1:9")
    status, answer = await post(dead, "/liff/v1/attribution", {"id_token": bot.platform.id_token(new_user_id()),
                                                               "code": code})
    assert status == 503 and answer["error"]["code"] == "LINE_UNAVAILABLE"


@pytest.mark.parametrize("body", [[], "x", {"code": "ABCDEFGH"}, {"id_token": 5, "code": "ABCDEFGH"},
                                  {"id_token": "t", "code": "bad"}, {"id_token": "t"}])
async def test_a_bad_body_is_400(liff_bot: Bot, body: Any) -> None:
    status, answer = await post(liff_bot, "/liff/v1/attribution", body)
    assert status == 400 and answer["error"]["code"], answer


async def test_without_liff_the_endpoints_say_so(bot: Bot) -> None:
    status, answer = await post(bot, "/liff/v1/attribution", {"id_token": "t", "code": "ABCDEFGH"})
    assert status == 404 and answer["error"]["code"] == "LIFF_DISABLED"
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    said = text_of(await converse(bot.platform, uid, bot.platform.text(uid, "招待")))
    assert f"{PUBLIC}/i/" in said and "liff.line.me" not in said


async def test_refused_tokens_spend_the_address_budget(liff_bot: Bot) -> None:
    _, code = await referrer(liff_bot)
    statuses = [(await attribution(liff_bot, new_user_id(), code, token="forged.token.x"))[0] for _ in range(25)]
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429, statuses


# ---- the page ------------------------------------------------------------------------------------------
async def test_the_liff_page_in_both_languages(liff_bot: Bot) -> None:
    _, code = await referrer(liff_bot)
    for lang, word in (("ja", "招待コード"), ("en", "Invite code")):
        async with liff_bot.http.get(f"{liff_bot.url}/liff/invite?code={code}",
                                     headers={"Accept-Language": lang}) as response:
            page = await response.text()
            assert response.status == 200
            policy = response.headers["Content-Security-Policy"]
        assert word in page and code in page
        assert "https://static.line-scdn.net/liff/edge/2/sdk.js" in page and 'src="invite.js"' in page
        assert "https://line.me/R/oaMessage/" in page, "outside LINE: today's page"
        assert "script-src 'self' https://static.line-scdn.net" in policy
    state = "%3Fcode%3D" + code  # LINE's first redirect keeps the query in liff.state
    async with liff_bot.http.get(f"{liff_bot.url}/liff/invite?liff.state={state}") as response:
        assert response.status == 200 and code in await response.text()
    # LINE loads the page twice per open (liff.state, then the query): two opens above, plus that one
    assert (await stats(liff_bot))["report"]["funnel"]["liff_pages_opened"] == 2
    async with liff_bot.http.get(f"{liff_bot.url}/liff/invite?code=ZZZZ2345") as response:
        assert response.status == 404
    async with liff_bot.http.get(f"{liff_bot.url}/liff/invite.js") as response:
        assert response.status == 200 and "liff.getIDToken()" in await response.text()


# ---- shares -------------------------------------------------------------------------------------------------
async def test_a_share_counts_once_per_person_code_and_day(liff_bot: Bot) -> None:
    bot = liff_bot
    a, code = await referrer(bot)
    body = {"id_token": bot.platform.id_token(a), "code": code}
    assert await post(bot, "/liff/v1/shares", body) == (200, {"counted": True})
    assert await post(bot, "/liff/v1/shares", body) == (200, {"counted": False})
    other = new_user_id()
    assert await post(bot, "/liff/v1/shares", {"id_token": bot.platform.id_token(other), "code": code}) == \
        (200, {"counted": True})
    status, _ = await post(bot, "/liff/v1/shares", {"id_token": "forged", "code": code})
    assert status == 401
    report = (await stats(bot))["report"]
    assert report["shares"] == 2 and report["funnel"]["shares"] == 2
    day = report["by_day"][-1]
    assert day["shares"] == 2


async def test_the_share_card_names_the_code_owner_only_with_consent(liff_bot: Bot) -> None:
    import html
    import json

    a, code = await referrer(liff_bot)

    async def card() -> dict:
        async with liff_bot.http.get(f"{liff_bot.url}/liff/invite?code={code}") as response:
            page = await response.text()
        found = re.search(r'data-card="([^"]*)"', page)
        assert found, "no share card in the page"
        return dict(json.loads(html.unescape(found.group(1))))

    await liff_bot.services.program.set_nickname(a, "ミカ", False)
    hidden = await card()
    assert "ミカ" not in json.dumps(hidden, ensure_ascii=False)
    assert hidden["type"] == "flex" and f"https://liff.line.me/{LIFF_ID}?code={code}" in json.dumps(hidden)
    await liff_bot.services.program.set_nickname(a, None, True)
    assert "ミカさんからの招待です" in json.dumps(await card(), ensure_ascii=False)


# ---- the welcome coupon comes along on both LIFF paths ------------------------------------------------
async def test_the_welcome_coupon_comes_with_a_liff_attribution_before_and_after_the_follow(
        bot_with: BotWith, tmp_path: Path) -> None:
    from tests.support.rules_helpers import variant

    coupon = '\n[referral.friend_coupon]\nkind = "generated"\nyen_off = 500\nprefix = "WELCOME-"\n'
    bot = await bot_with(**LIFF, rewards_config=variant(tmp_path, coupon, notifications__quiet_hours='""'))
    platform = bot.platform
    a, code = await referrer(bot)
    # before the follow: the follow's reply shows the card, as a code message's answer would
    b = new_user_id()
    assert (await attribution(bot, b, code))[1]["status"] == "awaiting_follow"
    said = await converse(platform, b, platform.follow(b))
    given = await bot.services.program.friend_coupon(b)
    assert given and given.startswith("WELCOME-")
    assert given in json.dumps([m for m in said if m.get("type") == "flex"], ensure_ascii=False)
    # a friend who followed first: the page's push carries the code, once
    c = new_user_id()
    await converse(platform, c, platform.follow(c))
    mark = len(platform.calls)
    assert (await attribution(bot, c, code))[1]["status"] == "pending"
    code_c = await bot.services.program.friend_coupon(c)
    assert code_c and code_c != given
    await platform.wait_for(lambda: code_c in text_of(platform.said_to(c, mark)))
    assert (await attribution(bot, c, code))[1]["status"] == "pending"
    pushed = [call for call in platform.calls[mark:] if call.endpoint == "push" and c in call.to and call.status == 200]
    assert sum(code_c in json.dumps(call.body, ensure_ascii=False) for call in pushed) == 1, "the code pushed once"
