"""Flex cards: every card renders for a brand-new member and for one with everything, in both languages;
each is a valid Flex container within LINE's limits; every button in every card leads to a handler; template
texts exist in every locale; text from people goes in as data."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from linebot.v3.messaging import FlexContainer, FlexMessage

from bot.config import ASSETS
from bot.line import flex
from bot.line.i18n import Texts
from bot.line.limits import actions as _actions
from handlers.rewards_catalog import ConfirmClaim, RewardsPage, ShowReward
from linesim.phone import decode_qr
from linesim.platform import Platform, new_user_id, text_of
from rewards import keys
from rewards.names import masked_label
from tests.support.harness import PUBLIC, Bot, BotWith, converse, pack
from tests.support.rules_helpers import variant

HOSTILE = 'Q"uo\'te} {{points}} [[flex_member_title]] </b>\nnext line \\ end'
REWARD_COUNT = 25


def rewards_toml() -> str:
    parts = []
    for n in range(REWARD_COUNT):
        name = HOSTILE if n == 0 else f"特典 {n:02d}"
        parts.append(f'[[rewards]]\nid = "r{n:02d}"\ncost = {10 + n}\nstock = 100\nvalid_days = 30\n'
                     f'name = {{ ja = {json.dumps(name, ensure_ascii=False)}, en = {json.dumps(name)} }}\n'
                     f'description = {{ ja = "説明 {n}", en = "About {n}" }}\n')
    parts.append('[[rewards]]\nid = "gold_only"\ncost = 10\ntier = "gold"\nname = { ja = "ゴールド限定", en = "Gold only" }\n')
    return "\n".join(parts)


@pytest_asyncio.fixture
async def shop(bot_with: BotWith, tmp_path: Path) -> Bot:
    # a hold, so referrals show pending points; short expiry with a long warning, so points are "expiring soon"
    rules = variant(tmp_path, rewards_toml(), referral__hold_days="7", points__expire_after_months="1",
                    points__warning_days="40")
    return await bot_with(rewards_config=rules)


WORDS = {"ja": ["ポイント", "招待", "紹介状況", "ランキング", "特典", "クーポン", "ヘルプ"],
         "en": ["points", "invite", "referrals", "leaderboard", "rewards", "coupons", "help"]}


async def new_member(bot: Bot, lang: str) -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid, language=lang))
    return uid


async def full_member(bot: Bot, lang: str) -> str:
    """A tier above the first, a completed (held) and a pending referral, expiring points, a coupon, a
    consented nickname with quotes and braces."""
    platform, program, catalog = bot.platform, bot.services.program, bot.services.catalog
    uid = await new_member(bot, lang)
    await program.adjust(uid, 1500, "test", "test", f"seed:{uid}")
    code = await program.invite_code(uid)
    done, waiting = new_user_id(), new_user_id()
    for friend in (done, waiting):
        await converse(platform, friend, platform.follow(friend))
        await converse(platform, friend, platform.text(friend, f"招待コード {code} で登録します"))
    status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": f"o-{done}", "user_id": done,
                                                                  "amount": 2000})
    assert status == 200 and body["referral"] == {"status": "completed"}, body
    offer = await catalog.show(uid, "r01")
    assert offer is not None and offer.refusal is None
    assert (await catalog.confirm(uid, offer.claim_id)).ok
    for named in (uid, done):  # the member's own (their card) and a friend's (the referral status)
        await bot.services.redis.hset(keys.member(named), mapping={keys.field("nickname"): HOSTILE,
                                                                   keys.field("nickname_consent"): 1})
    member = await program.member(uid)
    assert member is not None and member.tier == "silver" and member.pending_points > 0
    return uid


def flex_messages(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "flex"]


def check_card(message: dict) -> None:
    """Valid for the SDK's models and within LINE's documented limits."""
    contents = message["contents"]
    assert FlexContainer.from_json(json.dumps(contents)) is not None
    FlexMessage.from_dict(message)
    assert 1 <= len(message["altText"]) <= 1500
    size = len(json.dumps(contents, ensure_ascii=False).encode())
    if contents["type"] == "carousel":
        assert 1 <= len(contents["contents"]) <= 12 and size <= 50_000
        assert len({b.get("size", "mega") for b in contents["contents"]}) == 1
    else:
        assert size <= 30_000
    for action in _actions(message):
        assert len(action.get("label", "")) <= 40
        assert len(action.get("data", "")) <= 300
        if action["type"] == "uri":
            assert action["uri"].startswith("https://")


async def cards_for(bot: Bot, uid: str, lang: str) -> dict[str, list[dict]]:
    platform = bot.platform
    shown = {word: await converse(platform, uid, platform.text(uid, word)) for word in WORDS[lang]}
    catalog = shown[WORDS[lang][4]]
    shown["detail"] = await converse(platform, uid, platform.postback(uid, pack(ShowReward("r02"))))
    confirm = [a["data"] for a in _actions(shown["detail"][-1])
               if a["type"] == "postback" and a["data"].startswith(ConfirmClaim.prefix + "|")]
    if confirm:  # a member in debt is refused, kindly, with no confirm button
        shown["claimed"] = await converse(platform, uid, platform.postback(uid, confirm[0]))
    more = next(a["data"] for a in _actions(catalog[-1]) if a.get("data", "").startswith("rw.page|"))
    shown["page2"] = await converse(platform, uid, platform.postback(uid, more))
    return shown


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("who", ["new", "full"])
async def test_every_card_renders_within_limits(shop: Bot, lang: str, who: str) -> None:
    uid = await (new_member(shop, lang) if who == "new" else full_member(shop, lang))
    member = await shop.services.program.member(uid)  # as the member card shows it, before any claim
    assert member is not None
    shown = await cards_for(shop, uid, lang)
    texts: Texts = shop.services.texts
    for name, messages in shown.items():
        cards = flex_messages(messages)
        if name == WORDS[lang][5] and who == "new":  # no coupons yet: one friendly line, not an empty card
            assert texts.get(lang, "coupons_empty") in text_of(messages)
        else:
            assert cards, f"{name}: no Flex card in {messages}"
        for message in cards:
            check_card(message)
        assert messages[-1].get("quickReply", {}).get("items"), f"{name}: no quick replies under the last message"
        assert texts.get(lang, "fallback") not in text_of(messages)
    said = {name: text_of(messages) for name, messages in shown.items()}
    assert f"{member.points:,} pt" in said[WORDS[lang][0]]
    assert f"{PUBLIC}/m/" in json.dumps(shown[WORDS[lang][0]]), "the member QR"
    assert f"{PUBLIC}/i/" in said[WORDS[lang][1]] and "line.me/R/share?text=" in said[WORDS[lang][1]]
    catalog = flex_messages(shown[WORDS[lang][4]])[0]["contents"]
    assert catalog["type"] == "carousel" and len(catalog["contents"]) == 12, "head, ten rewards and 'more'"
    assert f"{PUBLIC}/c/" in said["claimed"]
    if who == "full":
        member_card = said[WORDS[lang][0]]
        assert texts.get(lang, "flex_member_expiring") in member_card
        assert texts.get(lang, "flex_member_pending") in member_card
        assert texts.get(lang, "flex_refs_state_FIRST_PURCHASE") in said[WORDS[lang][2]]
        assert texts.get(lang, "flex_refs_state_HOLD") in said[WORDS[lang][2]]
        assert flex.cut(HOSTILE, 20) in said[WORDS[lang][2]], "a friend's consented nickname, verbatim but cut"
        assert texts.get(lang, "name_you") in said[WORDS[lang][3]], "on the leaderboard, the member is 'you'"
        assert flex.cut(HOSTILE, 40) in member_card
        assert texts.get(lang, "coupon_state_valid") in said[WORDS[lang][5]]
    else:
        assert texts.get(lang, "flex_refs_empty") in said[WORDS[lang][2]]


@pytest.mark.parametrize("lang", ["ja", "en"])
async def test_a_debt_shows_on_the_member_card_and_a_claim_is_refused_kindly(shop: Bot, lang: str) -> None:
    platform, texts = shop.platform, shop.services.texts
    uid = await new_member(shop, lang)
    await shop.services.program.adjust(uid, -500, "test", "test", f"debt:{uid}")
    shown = await cards_for(shop, uid, lang)
    for messages in shown.values():
        for message in flex_messages(messages):
            check_card(message)
    assert texts.get(lang, "flex_member_debt") in text_of(shown[WORDS[lang][0]])
    assert "claimed" not in shown and texts.get(lang, "claim_refused_IN_DEBT") in text_of(shown["detail"])
    assert not any(m["type"] == "flex" for m in await converse(platform, uid, platform.text(uid, "xyzzy")))


async def test_no_dead_taps(shop: Bot) -> None:
    """Every button and quick reply of every card leads to a handler, never to the fallback."""
    platform = shop.platform
    full, new = await full_member(shop, "ja"), await new_member(shop, "ja")
    shown = {f"{who}:{name}": messages for who, uid in (("full", full), ("new", new))
             for name, messages in (await cards_for(shop, uid, "ja")).items()}
    uid = new
    texts = shop.services.texts
    dead = {texts.get("ja", "fallback"), texts.get("ja", "button_not_valid")}
    tried: set[str] = set()
    for name, messages in shown.items():
        for action in _actions(messages):
            kind = action["type"]
            target = action.get("text") or action.get("data") or action.get("uri")
            if target in tried:
                continue
            tried.add(target)
            if kind == "uri":
                if target.startswith(PUBLIC):
                    async with shop.http.get(shop.url + target[len(PUBLIC):]) as r:
                        assert r.status == 200, (name, target)
                else:
                    assert target.startswith("https://line.me/R/"), (name, target)
                continue
            event = platform.text(uid, target) if kind == "message" else platform.postback(uid, target)
            answer = await converse(platform, uid, event)
            assert not any(m.get("text") in dead for m in answer), f"{name}: {action} is a dead tap"
    assert len(tried) > 20


async def test_the_catalog_pages_through_every_reward(shop: Bot) -> None:
    platform = shop.platform
    uid = await new_member(shop, "en")
    seen: list[str] = []
    total = len(await shop.services.catalog.catalog(uid))  # ours and the default rules' own
    assert 20 < total <= 30
    said = await converse(platform, uid, platform.text(uid, "rewards"))
    for page in (1, 2, 3):
        bubbles = flex_messages(said)[0]["contents"]["contents"]
        seen += [a["data"] for b in bubbles for a in _actions(b) if a.get("data", "").startswith("rw.show|")]
        more = [a["data"] for a in _actions(bubbles[-1]) if a.get("data", "").startswith("rw.page|")]
        if page == 3:
            assert not more and len(bubbles) == 1 + (total - 20)
            break
        assert more == [pack(RewardsPage(page))] and len(bubbles) == 12
        said = await converse(platform, uid, platform.postback(uid, more[0]))
    assert len(seen) == len(set(seen)) == total, "every reward once"


async def test_member_qr_carries_a_token_that_staff_can_resolve(shop: Bot) -> None:
    uid = await new_member(shop, "ja")
    said = await converse(shop.platform, uid, shop.platform.text(uid, "ポイント"))
    url = flex_messages(said)[0]["contents"]["footer"]["contents"][0]["url"]
    token = url.rsplit("/", 1)[1].removesuffix(".png")
    assert uid not in url and len(token) >= 16
    async with shop.http.get(shop.url + url[len(PUBLIC):]) as r:
        assert r.status == 200 and r.content_type == "image/png"
        png = await r.read()
    decoded = decode_qr(png)
    assert decoded == token
    program = shop.services.program
    assert await program.member_by_token(token) == uid
    assert await program.member_token(uid) == token, "one token per member"
    assert await program.member_by_token("x" * 22) is None and await program.member_by_token("") is None
    async with shop.http.get(shop.url + "/m/" + "x" * 22 + ".png") as r:
        assert r.status == 404


async def test_the_leaderboard_counts_a_referral_once_and_a_void_takes_it_back(shop: Bot) -> None:
    platform, program = shop.platform, shop.services.program
    a = await new_member(shop, "ja")
    code = await program.invite_code(a)
    friend = new_user_id()
    await converse(platform, friend, platform.follow(friend))
    await converse(platform, friend, platform.text(friend, f"招待コード {code} で登録します"))
    await shop.admin("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": friend, "amount": 2000})
    for _ in range(3):  # the settle step again (a redelivery, the worker's sweep) counts nothing more
        await program.settle(friend)
        await program.settle_all()
    board = await program.leaderboard()
    assert [(r.user_id, r.completed, r.nickname) for r in board] == [(a, 1, None)]
    said = text_of(await converse(platform, friend, platform.text(friend, "ランキング")))
    assert f"会員 {masked_label(a)}" in said, "no nickname without consent: the member's masked label"
    assert "あなた" in text_of(await converse(platform, a, platform.text(a, "ランキング"))), "the member is 'you'"
    await shop.services.redis.hset(keys.member(a), mapping={keys.field("nickname"): "ハナ", keys.field("nickname_consent"): 0})
    assert "ハナ" not in text_of(await converse(platform, friend, platform.text(friend, "ランキング")))
    status, _ = await shop.admin("POST", "/api/v1/conversions/o-1/refund")
    assert status == 200
    assert await program.leaderboard() == []


def test_every_template_text_exists_in_every_locale() -> None:
    texts = Texts(ASSETS / "locales")
    used = {name: flex.text_keys(name) for name in flex.template_names()}
    assert used["membership"], "templates use locale texts"
    for lang, table in texts.locales.items():
        missing = {name: sorted(k for k in found if k not in table) for name, found in used.items()}
        assert not any(missing.values()), f"{lang}: templates use texts the locale lacks: {missing}"


def test_a_template_key_missing_from_the_locales_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken.json").write_text('{"type": "text", "text": "[[no_such_text]]"}', encoding="utf-8")
    monkeypatch.setattr(flex, "FLEX_DIR", tmp_path)
    flex._load.cache_clear()
    try:
        assert flex.text_keys("broken") == {"no_such_text"}
        texts = Texts(ASSETS / "locales")
        assert all("no_such_text" not in table for table in texts.locales.values()), "what the check above finds"
        with pytest.raises(flex.CardError):
            flex.render("broken", lambda key, **values: texts.locales["ja"][key])
    finally:
        flex._load.cache_clear()


def test_values_go_in_as_data_never_as_json_text() -> None:
    def t(key: str, **values: Any) -> str:
        return {"flex_reward_cost": "{cost} pt"}[key].format(**values)

    action = {"type": "postback", "label": "x", "data": "d"}
    card = flex.render("reward", t, name=HOSTILE, cost=HOSTILE, notes=None, style="primary", action=action)
    body = card["body"]["contents"]
    assert body[0]["text"] == HOSTILE, "verbatim: quotes, braces, placeholders and newlines stay data"
    assert body[1]["text"] == HOSTILE + " pt", "a value inside a locale text is not filled again"
    assert len(body) == 2, "None drops the element"
    assert json.loads(json.dumps(card)) == card
    assert flex.cut(HOSTILE, 10) == 'Q"uo\'te} …' and "\n" not in flex.cut(HOSTILE, 100)


def test_message_refuses_what_line_would() -> None:
    bubble = {"type": "bubble", "body": {"type": "box", "layout": "vertical",
                                         "contents": [{"type": "text", "text": "x" * 31_000}]}}
    with pytest.raises(flex.CardError):
        flex.message("alt", bubble)
    with pytest.raises(flex.CardError):
        flex.carousel([{"type": "bubble"}] * 13)
    assert len(flex.message("a" * 5000, {"type": "bubble"})["altText"]) <= 1500


def test_the_line_stand_in_flags_flex_over_lines_limits() -> None:
    platform = Platform(secret="s", token="t", basic_id="@x")

    def flex_of(contents: dict) -> list[dict]:
        return [{"type": "flex", "altText": "a", "contents": contents}]

    bubble = {"type": "bubble"}
    assert platform._limits(flex_of({"type": "carousel", "contents": [bubble] * 12})) is None
    assert "12 bubbles" in str(platform._limits(flex_of({"type": "carousel", "contents": [bubble] * 13})))
    mixed = [bubble, {"type": "bubble", "size": "kilo"}]
    assert "same size" in str(platform._limits(flex_of({"type": "carousel", "contents": mixed})))
    plain_http = {"type": "bubble", "hero": {"type": "image", "url": "http://example.test/q.png"}}
    assert "https" in str(platform._limits(flex_of(plain_http)))
