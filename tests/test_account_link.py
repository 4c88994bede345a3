"""Account link (LINE's): 連携 / link -> link token -> the shop's login page -> POST /api/v1/account-links -> the
accountLink event with the nonce links the member to the shop's customer; orders by customer id, kept while the
customer is not linked and credited once when they link; relinking both ways, audited."""
from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from linebot.v3.webhooks import AccountLinkEvent

from bot.intake import events
from handlers.account_link import link_url, masked
from linesim.platform import new_user_id, text_of
from rewards import keys
from tests.support.harness import Bot, BotWith, converse

SHOP = "https://shop.example.test/line/login?from=line"  # a query already: the token must be appended with &
NONCE = re.compile(r"[A-Za-z0-9_-]{32,}")  # base64url, 24 bytes (192 bits)


@pytest.fixture
async def bot(bot_with: BotWith) -> Bot:
    return await bot_with(shop_link_url=SHOP)


def uris(messages: list[dict]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "uri" and isinstance(node.get("uri"), str):
                found.append(node["uri"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(messages)
    return found


async def friend(bot: Bot) -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    return uid


async def ask_to_link(bot: Bot, uid: str) -> str:
    """連携 in chat: the link token from the button to the shop's page."""
    said = await converse(bot.platform, uid, bot.platform.text(uid, "連携"))
    relink = [a["data"] for a in _actions(said) if a.get("type") == "postback"]
    if relink:  # linked already: the relink button asks for a new token
        said = await converse(bot.platform, uid, bot.platform.postback(uid, relink[0]))
    shop = [u for u in uris(said) if u.startswith("https://shop.example.test/")]
    assert shop, text_of(said)
    assert shop[0].startswith(SHOP + "&linkToken="), shop[0]
    return parse_qs(urlsplit(shop[0]).query)["linkToken"][0]


async def nonce_for(bot: Bot, token: str, customer_id: str) -> str:
    status, answer = await bot.admin("POST", "/api/v1/account-links", {"link_token": token, "customer_id": customer_id})
    assert status == 201, answer
    assert isinstance(answer, dict)
    nonce = answer["nonce"]
    assert NONCE.fullmatch(nonce)
    assert answer["redirect_url"] == (f"https://access.line.me/dialog/bot/accountLink?linkToken={token}"
                                      f"&nonce={nonce}")
    return str(nonce)


async def open_dialog(bot: Bot, uid: str, token: str, nonce: str) -> str:
    """The customer's browser at LINE's dialog: LINE sends the accountLink event; what the bot told them."""
    event = bot.platform.account_link(token, nonce)
    assert event is not None and event["source"]["userId"] == uid
    if "replyToken" not in event:  # failed: the bot can only push
        return text_of(await converse(bot.platform, uid, event))
    return text_of(await converse(bot.platform, uid, event))


async def link(bot: Bot, uid: str, customer_id: str) -> str:
    token = await ask_to_link(bot, uid)
    return await open_dialog(bot, uid, token, await nonce_for(bot, token, customer_id))


async def member(bot: Bot, uid: str) -> dict:
    status, answer = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200, answer
    assert isinstance(answer, dict)
    return answer


async def stats(bot: Bot) -> dict:
    _, answer = await bot.admin("GET", "/api/v1/stats")
    assert isinstance(answer, dict)
    return answer


async def audit(bot: Bot) -> list[dict]:
    _, answer = await bot.admin("GET", "/api/v1/audit?limit=500")
    assert isinstance(answer, dict)
    return [e for e in answer["entries"] if e.get("who") == "account_link"]


async def order(bot: Bot, body: dict) -> tuple[int, dict]:
    status, answer = await bot.admin("POST", "/api/v1/conversions", {"amount": 3000, **body})
    assert isinstance(answer, dict), answer
    return status, answer


def move_clock(bot: Bot, seconds: float) -> None:
    bot.services.program.clock = lambda: time.time() + seconds


# ---- the flow ----------------------------------------------------------------------------------------------------
async def test_the_whole_flow_links_the_member_and_the_apis_and_the_card_say_so(bot: Bot) -> None:
    uid = await friend(bot)
    assert (await member(bot, uid))["customer_id"] is None
    said = await link(bot, uid, "C-10001")
    assert bot.services.texts.get("ja", "link_done", customer=masked("C-10001")) in said
    assert "C-10001" not in said  # masked in chat
    assert (await member(bot, uid))["customer_id"] == "C-10001"
    status, by_customer = await bot.admin("GET", "/api/v1/customers/C-10001")
    assert status == 200 and by_customer == await member(bot, uid)
    # the member card shows the link; 連携 again says it is linked and offers to link another account
    card = text_of(await converse(bot.platform, uid, bot.platform.text(uid, "ポイント")))
    assert bot.services.texts.get("ja", "link_member_linked", customer=masked("C-10001")) in card
    again = await converse(bot.platform, uid, bot.platform.text(uid, "link"))
    assert bot.services.texts.get("ja", "link_already", customer=masked("C-10001")) in text_of(again)
    assert not uris(again), "no token is issued before they ask to relink"
    assert (await stats(bot))["account_links"] == 1


async def test_the_member_card_of_an_unlinked_member_has_the_link_button(bot: Bot) -> None:
    uid = await friend(bot)
    said = await converse(bot.platform, uid, bot.platform.text(uid, "points"))
    texts = bot.services.texts
    assert texts.get("ja", "link_member_unlinked") in text_of(said)
    flat = str(said)
    assert f"'text': '{texts.get('ja', 'link_word')}'" in flat  # the button says 連携


async def test_without_shop_link_url_the_bot_says_kindly_there_is_no_account_link(bot_with: BotWith) -> None:
    bot = await bot_with()
    uid = await friend(bot)
    said = text_of(await converse(bot.platform, uid, bot.platform.text(uid, "連携")))
    assert bot.services.texts.get("ja", "link_unavailable") in said
    card = text_of(await converse(bot.platform, uid, bot.platform.text(uid, "ポイント")))
    assert bot.services.texts.get("ja", "link_member_unlinked") not in card
    assert not [c for c in bot.platform.calls if c.endpoint == "link_token"]


def test_the_link_token_is_appended_to_whatever_query_the_shop_url_has() -> None:
    assert link_url("https://s.test/login", "T1") == "https://s.test/login?linkToken=T1"
    assert link_url("https://s.test/login?a=1&b=x%20y", "T1") == "https://s.test/login?a=1&b=x+y&linkToken=T1"
    assert link_url("https://s.test/login?linkToken=old", "T2") == "https://s.test/login?linkToken=T2"
    assert masked("C-10001") == "****001" and masked("CUST-000123") == "****0123" and masked("C-20") == "****20"
    assert masked("a") == "****"


def test_the_account_link_event_parses_as_the_sdk_model_with_and_without_a_reply_token() -> None:
    base = {"type": "accountLink", "mode": "active", "timestamp": 1, "source": {"type": "user", "userId": "U" + "a" * 32},
            "webhookEventId": "01J", "deliveryContext": {"isRedelivery": False}}
    ok = events.parse({**base, "replyToken": "r", "link": {"result": "ok", "nonce": "n"}})
    failed = events.parse({**base, "link": {"result": "failed", "nonce": "n"}})
    assert isinstance(ok, AccountLinkEvent) and ok.reply_token == "r" and ok.link.nonce == "n"
    assert isinstance(failed, AccountLinkEvent) and failed.reply_token is None


# ---- nonces: once, known, in time, and only on "ok" --------------------------------------------------------------
async def test_a_nonce_works_once(bot: Bot) -> None:
    uid = await friend(bot)
    token = await ask_to_link(bot, uid)
    nonce = await nonce_for(bot, token, "C-1")
    await open_dialog(bot, uid, token, nonce)
    other = await friend(bot)
    # the same nonce again, in another event (someone replaying it, or the same user later)
    replay = bot.platform.event("accountLink", other, link={"result": "ok", "nonce": nonce})
    said = text_of(await converse(bot.platform, other, replay))
    assert bot.services.texts.get("ja", "link_refused") in said
    assert (await member(bot, other))["customer_id"] is None
    assert (await member(bot, uid))["customer_id"] == "C-1"
    assert (await stats(bot))["account_link_refused_used"] == 1


@pytest.mark.parametrize("case", ["unknown", "expired", "failed"])
async def test_an_unknown_expired_or_failed_nonce_changes_nothing_and_is_counted(bot: Bot, case: str) -> None:
    uid = await friend(bot)
    token = await ask_to_link(bot, uid)
    nonce = await nonce_for(bot, token, "C-2")
    if case == "unknown":
        event = bot.platform.event("accountLink", uid, link={"result": "ok", "nonce": "x" * 32})
    elif case == "expired":  # a nonce lives 10 minutes, the life of the link token it was minted for
        move_clock(bot, 10 * 60 + 5)
        event = bot.platform.event("accountLink", uid, link={"result": "ok", "nonce": nonce})
    else:  # LINE says it failed (the token expired or was used): no reply token, so the bot pushes
        event = bot.platform.event("accountLink", uid, reply=False, link={"result": "failed", "nonce": nonce})
    said = text_of(await converse(bot.platform, uid, event))
    assert bot.services.texts.get("ja", "link_refused") in said
    assert (await member(bot, uid))["customer_id"] is None
    assert (await bot.admin("GET", "/api/v1/customers/C-2"))[0] == 404
    counted = await stats(bot)
    assert counted[f"account_link_refused_{case}"] == 1
    assert "account_links" not in counted
    if case == "failed":  # the nonce was not used up by a failed link: a good event with it still works
        move_clock(bot, 0)
        assert "****"[:4] in await open_dialog(bot, uid, token, nonce)
        assert (await member(bot, uid))["customer_id"] == "C-2"


async def test_a_nonce_for_one_line_user_does_not_link_another(bot: Bot) -> None:
    uid, other = await friend(bot), await friend(bot)
    token = await ask_to_link(bot, uid)
    nonce = await nonce_for(bot, token, "C-3")
    event = bot.platform.event("accountLink", other, link={"result": "ok", "nonce": nonce})
    assert bot.services.texts.get("ja", "link_refused") in text_of(await converse(bot.platform, other, event))
    assert (await member(bot, other))["customer_id"] is None
    assert (await stats(bot))["account_link_refused_other_user"] == 1


async def test_the_platform_sends_failed_for_a_used_link_token(bot: Bot) -> None:
    uid = await friend(bot)
    token = await ask_to_link(bot, uid)
    await open_dialog(bot, uid, token, await nonce_for(bot, token, "C-4"))
    event = bot.platform.account_link(token, "whatever")
    assert event is not None and event["link"]["result"] == "failed" and "replyToken" not in event


# ---- redelivery and crashes ----------------------------------------------------------------------------------------
async def test_a_redelivered_account_link_event_links_and_credits_once(bot: Bot) -> None:
    uid = await friend(bot)
    assert (await order(bot, {"order_id": "r-1", "customer_id": "C-5"}))[0] == 202
    token = await ask_to_link(bot, uid)
    event = bot.platform.account_link(token, await nonce_for(bot, token, "C-5"))
    assert event is not None
    said = text_of(await converse(bot.platform, uid, event))
    assert bot.services.texts.get("ja", "link_credited", orders=1, points="30") in said
    points = (await member(bot, uid))["points"]
    mark = len(bot.platform.calls)
    redelivered = {**event, "deliveryContext": {"isRedelivery": True}}
    assert await bot.platform.send(redelivered) == 200
    await bot.idle()
    assert not bot.platform.said_to(uid, mark)
    assert (await member(bot, uid))["points"] == points
    assert (await stats(bot))["account_links"] == 1


async def test_a_crash_mid_link_is_finished_by_the_clock_and_a_rerun_credits_nothing_twice(
        bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    program = bot.services.program
    links = program.links
    uid, old = await friend(bot), await friend(bot)
    await link(bot, old, "C-6")  # the customer moves from `old` to `uid`: every step runs
    assert (await order(bot, {"order_id": "k-1", "customer_id": "C-7"}))[0] == 202
    await link(bot, uid, "C-7")
    await link(bot, uid, "C-6")  # nonce for the move: the crash comes in its credit step (after the moves)
    assert (await member(bot, uid))["customer_id"] == "C-6"

    # now straight through the domain: a link from C-6 back to C-7 on a fresh user, crashing after the first steps
    third = await friend(bot)
    assert (await order(bot, {"order_id": "k-2", "customer_id": "C-8"}))[0] == 202
    token = await ask_to_link(bot, third)
    nonce = await nonce_for(bot, token, "C-8")
    real_credit = links.credit
    calls = 0

    async def crashing(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the worker died here")
        return await real_credit(*args, **kw)

    monkeypatch.setattr(links, "credit", crashing)
    with pytest.raises(ConnectionError):
        await links.account_link(third, "ok", nonce, "event-1")
    assert await bot.services.redis.hexists(keys.LINKS_SETTLE, nonce)
    assert await links.finish_all() == 1  # the worker's clock
    assert not await bot.services.redis.hexists(keys.LINKS_SETTLE, nonce)
    after = await member(bot, third)
    assert after["customer_id"] == "C-8" and after["points"] > 0
    again = await links.account_link(third, "ok", nonce, "event-1")  # the event's own re-run
    assert again.ok and again.credited == []
    assert (await member(bot, third))["points"] == after["points"]
    assert (await stats(bot))["orders_credited_on_link"] == 2  # k-1 and k-2, once each


# ---- relinking ------------------------------------------------------------------------------------------------------
async def test_relinking_moves_the_link_both_ways_and_is_audited(bot: Bot) -> None:
    a, b = await friend(bot), await friend(bot)
    await link(bot, a, "C-20")
    # the customer links to another LINE user: it leaves the first one
    await link(bot, b, "C-20")
    assert (await member(bot, a))["customer_id"] is None
    assert (await member(bot, b))["customer_id"] == "C-20"
    assert (await bot.admin("GET", "/api/v1/customers/C-20"))[1]["user_id"] == b  # type: ignore[index]
    # the user links to another customer: the old customer is free again
    said = await link(bot, b, "C-21")
    assert bot.services.texts.get("ja", "link_moved", customer=masked("C-20")).strip() in said
    assert (await member(bot, b))["customer_id"] == "C-21"
    assert (await bot.admin("GET", "/api/v1/customers/C-20"))[0] == 404
    entries = await audit(bot)
    assert [(e["what"], e.get("customer"), e.get("from_user"), e.get("from_customer")) for e in entries] == [
        ("relink_customer", "C-20", a, None), ("relink_user", "C-21", None, "C-20")]
    assert (await stats(bot))["account_relinks"] == 2
    # an order for the old customer is no longer b's: kept until someone links it
    assert (await order(bot, {"order_id": "rl-1", "customer_id": "C-20"}))[0] == 202


async def test_relink_button_issues_a_new_token(bot: Bot) -> None:
    uid = await friend(bot)
    await link(bot, uid, "C-30")
    said = await converse(bot.platform, uid, bot.platform.text(uid, "連携"))
    data = next(a["data"] for a in _actions(said) if a.get("type") == "postback")
    answer = await converse(bot.platform, uid, bot.platform.postback(uid, data))
    assert [u for u in uris(answer) if u.startswith(SHOP + "&linkToken=")]


def _actions(messages: list[dict]) -> list[dict]:
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("postback", "uri", "message") and "label" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(messages)
    return found


# ---- orders by customer id -------------------------------------------------------------------------------------------
async def test_a_linked_customers_order_is_the_members_order_exactly_as_by_user_id(bot: Bot) -> None:
    a, b = await friend(bot), await friend(bot)
    await link(bot, a, "C-40")
    by_customer = await order(bot, {"order_id": "o-40", "customer_id": "C-40"})
    by_user = await order(bot, {"order_id": "o-41", "user_id": b})
    assert by_customer[0] == by_user[0] == 200
    assert by_customer[1]["points_awarded"] == by_user[1]["points_awarded"] > 0
    assert (await member(bot, a))["points"] == (await member(bot, b))["points"]
    assert await order(bot, {"order_id": "o-40", "customer_id": "C-40"}) == by_customer  # the same answer again
    assert (await order(bot, {"order_id": "o-40", "customer_id": "C-41"}))[0] == 409  # another customer's order id


async def test_an_unlinked_customers_order_is_kept_and_credited_once_when_they_link(bot: Bot) -> None:
    uid = await friend(bot)
    before = (await member(bot, uid))["points"]
    first = await order(bot, {"order_id": "u-1", "customer_id": "C-50", "amount": 5000})
    assert first == (202, {"order_id": "u-1", "status": "unattributed"})
    assert await order(bot, {"order_id": "u-1", "customer_id": "C-50", "amount": 5000}) == first  # idempotent
    assert (await stats(bot))["orders_unattributed"] == 1
    said = await link(bot, uid, "C-50")
    assert bot.services.texts.get("ja", "link_credited", orders=1, points="50") in said
    assert (await member(bot, uid))["points"] == before + 50
    # the same order again after the move: the credited answer, nothing more
    again = await order(bot, {"order_id": "u-1", "customer_id": "C-50", "amount": 5000})
    assert again[0] == 200 and again[1]["points_awarded"] == 50
    assert (await member(bot, uid))["points"] == before + 50
    assert (await stats(bot))["orders"] == 1


async def test_an_order_older_than_the_window_is_not_credited(bot: Bot) -> None:
    uid = await friend(bot)
    days = bot.services.program.rules.unattributed_days
    assert (await order(bot, {"order_id": "old-1", "customer_id": "C-60"}))[0] == 202
    move_clock(bot, days * 86_400 - 3_600)  # just within the window
    assert (await order(bot, {"order_id": "new-1", "customer_id": "C-60"}))[0] == 202
    move_clock(bot, days * 86_400 + 60)  # old-1 is now out of it, new-1 not
    said = await link(bot, uid, "C-60")
    assert bot.services.texts.get("ja", "link_credited", orders=1, points="30") in said
    counted = await stats(bot)
    assert counted["orders_credited_on_link"] == 1 and counted["orders_unattributed_expired"] == 1
    assert (await bot.admin("POST", "/api/v1/conversions/old-1/refund"))[1]["already_refunded"] is True  # type: ignore[index]


async def test_a_refund_of_an_unattributed_order_drops_it(bot: Bot) -> None:
    uid = await friend(bot)
    assert (await order(bot, {"order_id": "d-1", "customer_id": "C-70"}))[0] == 202
    status, refunded = await bot.admin("POST", "/api/v1/conversions/d-1/refund")
    assert status == 200 and refunded == {"order_id": "d-1", "refunded": True, "already_refunded": False,
                                          "points_reversed": 0}
    assert (await bot.admin("POST", "/api/v1/conversions/d-1/refund"))[1]["already_refunded"] is True  # type: ignore[index]
    before = (await member(bot, uid))["points"]
    said = await link(bot, uid, "C-70")
    assert "link_credited" not in said and (await member(bot, uid))["points"] == before
    again = await order(bot, {"order_id": "d-1", "customer_id": "C-70"})
    assert again[0] == 409 and again[1]["error"]["code"] == "ORDER_DROPPED"


async def test_an_order_kept_while_the_link_happens_is_credited(bot: Bot) -> None:
    """The customer links between the order's lookup and its being kept: the order credits itself."""
    uid = await friend(bot)
    await link(bot, uid, "C-80")
    links = bot.services.program.links
    real = links.user_of
    answers = iter([None])

    async def late(customer_id: str) -> str | None:  # the first lookup still saw no link
        return next(answers, await real(customer_id)) if customer_id == "C-80" else await real(customer_id)

    links.user_of = late  # type: ignore[method-assign]
    try:
        status, answer = await order(bot, {"order_id": "race-1", "customer_id": "C-80"})
    finally:
        links.user_of = real  # type: ignore[method-assign]
    assert status == 200 and answer["points_awarded"] == 30


# ---- the admin API's edges -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/v1/account-links", {"link_token": "t", "customer_id": "c"}),
    ("GET", "/api/v1/customers/C-1", None)])
async def test_the_new_endpoints_need_the_admin_token(bot: Bot, method: str, path: str, body: Any) -> None:
    assert (await bot.admin(method, path, body, token=None))[0] == 401
    assert (await bot.admin(method, path, body, token="wrong"))[0] == 403


@pytest.mark.parametrize("body,code", [
    ({"customer_id": "C-1"}, "MISSING_FIELD"),
    ({"link_token": "T"}, "MISSING_FIELD"),
    ({"link_token": "T", "customer_id": "C-1", "user_id": "U" + "0" * 32}, "UNKNOWN_FIELD"),
    ({"link_token": 5, "customer_id": "C-1"}, "INVALID_FIELD"),
    ({"link_token": "T", "customer_id": "has space"}, "INVALID_CUSTOMER_ID"),
    ({"link_token": "T", "customer_id": "{brace}"}, "INVALID_CUSTOMER_ID"),
    ({"link_token": "T", "customer_id": ""}, "INVALID_CUSTOMER_ID"),
    ({"link_token": "T", "customer_id": "x" * 129}, "INVALID_CUSTOMER_ID"),
    ({"link_token": "a/b", "customer_id": "C-1"}, "INVALID_LINK_TOKEN"),
    ({"link_token": "NeverIssuedByThisBot", "customer_id": "C-1"}, "INVALID_LINK_TOKEN"),
    ([1, 2], "INVALID_BODY")])
async def test_bad_account_link_bodies_are_400_and_change_nothing(bot: Bot, body: Any, code: str) -> None:
    status, answer = await bot.admin("POST", "/api/v1/account-links", body)
    assert status == 400 and answer["error"]["code"] == code, answer  # type: ignore[index]
    assert not [k async for k in bot.services.redis.scan_iter(match="shokai:linknonce:*")]


async def test_unknown_customers_and_bad_conversion_bodies(bot: Bot) -> None:
    status, answer = await bot.admin("GET", "/api/v1/customers/C-nobody")
    assert status == 404 and answer["error"]["code"] == "UNKNOWN_CUSTOMER"  # type: ignore[index]
    assert (await bot.admin("GET", "/api/v1/customers/a%20b"))[0] == 400
    both = await order(bot, {"order_id": "b-1", "customer_id": "C-1", "user_id": "U" + "0" * 32})
    neither = await order(bot, {"order_id": "b-2"})
    bad = await order(bot, {"order_id": "b-3", "customer_id": "no spaces please"})
    assert [both[0], neither[0], bad[0]] == [400, 400, 400]
    assert bad[1]["error"]["code"] == "INVALID_CUSTOMER_ID"
    assert not [k async for k in bot.services.redis.scan_iter(match="shokai:order:*")]


# ---- settings and rules -------------------------------------------------------------------------------------------
BASE_ENV = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://bot.test"}


def test_shop_link_url_is_an_http_url_short_enough_for_a_button() -> None:
    from bot.config import ConfigError, Settings

    assert Settings.from_env(BASE_ENV).shop_link_url is None
    assert Settings.from_env({**BASE_ENV, "SHOP_LINK_URL": " https://s.test/l?a=1 "}).shop_link_url == \
        "https://s.test/l?a=1"
    for bad in ("s.test/login", "ftp://s.test/", "https://s.test/l#top", "https://s.test/" + "x" * 900):
        with pytest.raises(ConfigError, match="SHOP_LINK_URL"):
            Settings.from_env({**BASE_ENV, "SHOP_LINK_URL": bad})


def test_the_unattributed_window_is_a_rule(tmp_path: Any) -> None:
    from bot.config import ASSETS
    from rewards.rules import RulesError, load_rules

    assert load_rules(ASSETS / "rules.toml").unattributed_days == 30
    text = (ASSETS / "rules.toml").read_text(encoding="utf-8")
    short = tmp_path / "short.toml"
    short.write_text(text.replace("unattributed_days = 30", "unattributed_days = 7"), encoding="utf-8")
    assert load_rules(short).unattributed_days == 7
    zero = tmp_path / "zero.toml"
    zero.write_text(text.replace("unattributed_days = 30", "unattributed_days = 0"), encoding="utf-8")
    with pytest.raises(RulesError, match="account_link.unattributed_days"):
        load_rules(zero)
