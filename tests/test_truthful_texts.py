"""Chat that tells the truth: every customer text follows the rules in force.

Under `trigger = "join"` nothing mentions a purchase; a minimum order and a hold are stated; a campaign that
boosts referral points shows the engine's amounts and its last day (base amounts when it boosts something
else); English speakers can choose English in the profile; the referral status and the leaderboard name
the same friend the same way, and the member as "you"; the rewards carousel hint points the way it runs.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest

from bot.line.limits import actions
from bot.line.offer_texts import last_moment
from linesim.platform import Platform, new_user_id, text_of
from rewards.names import masked_label
from rewards.offer import referral_offer
from rewards.rules import load_rules
from tests.support.harness import PUBLIC, Bot, BotWith, converse
from tests.support.rules_helpers import DEFAULT, variant

JST = ZoneInfo("Asia/Tokyo")
PURCHASE = re.compile(r"購入|買い物|買う|注文|purchas|\border|\bbuy|\bbought|shopping", re.I)
INVITE = re.compile(re.escape(PUBLIC) + r"/i/([A-Z0-9]+)")
WORDS = {"ja": {"help": "ヘルプ", "invite": "招待", "referrals": "紹介状況", "leaderboard": "ランキング",
                "profile": "プロフィール", "rewards": "特典", "gift": "相手に譲る"},
         "en": {"help": "help", "invite": "invite", "referrals": "referrals", "leaderboard": "leaderboard",
                "profile": "profile", "rewards": "rewards", "gift": "gift"}}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
EVERY_NOTICE_NOW = {"notifications__quiet_hours": '""'}
FIRST_MILESTONE = "[[referral.milestones]]\ncount = 1\npoints = 100\n"


# ---- helpers --------------------------------------------------------------------------------------
def readable(messages: list[dict]) -> str:
    """What a person reads, links decoded (the share button carries the caption in its URL)."""
    return unquote(text_of(messages))


async def member(bot: Bot, lang: str = "ja") -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid, language=lang))
    return uid


async def say(bot: Bot, uid: str, text: str) -> str:
    return readable(await converse(bot.platform, uid, bot.platform.text(uid, text)))


async def invite_code(bot: Bot, uid: str, lang: str = "ja") -> str:
    match = INVITE.search(await say(bot, uid, WORDS[lang]["invite"]))
    assert match, "no invite link on the invite card"
    return match.group(1)


async def send_code(bot: Bot, friend: str, code: str, referrer: str) -> tuple[str, str]:
    """The friend sends the code: (their answer, what the referrer was pushed)."""
    platform = bot.platform
    mark = len(platform.calls)
    answer = await say(bot, friend, f"招待コード {code} で登録します")
    await platform.wait_for(lambda: platform.said_to(referrer, mark), 10)
    return answer, readable(platform.said_to(referrer, mark))


async def invite_page(bot: Bot, code: str, lang: str) -> str:
    """The invite page's visible text."""
    async with bot.http.get(f"{bot.url}/i/{code}", headers={"Accept-Language": lang}) as r:
        assert r.status == 200
        page = await r.text()
    return re.sub(r"\s+", " ", re.sub(r"(?s)<style>.*?</style>|<[^>]+>", " ", page))


def share_caption(messages: list[dict]) -> str:
    """The text the card's "share in LINE" button sends."""
    uri = next(a["uri"] for a in actions(messages[-1]) if a.get("uri", "").startswith("https://line.me/R/share"))
    return unquote(uri)


def no_purchase(where: str, said: str) -> None:
    found = PURCHASE.search(said)
    assert found is None, f"{where} mentions a purchase ({found.group(0)!r}) under trigger = join: {said}"


def campaign_rules(tmp: Path, rules: str, multiplier: float = 2.0, days: int = 10, **settings: object) -> tuple[Path, datetime]:
    """The default rules plus a campaign running now on `rules`, ending at midnight `days` from today."""
    now = datetime.now(JST).replace(microsecond=0)
    ends = (now + timedelta(days=days)).replace(hour=0, minute=0, second=0)
    extra = (f'[[campaigns]]\nname = "now"\nstarts = {(now - timedelta(days=1)).isoformat()}\n'
             f"ends = {ends.isoformat()}\nrules = {rules}\nmultiplier = {multiplier}\n")
    return variant(tmp, extra, **settings), ends


def until(lang: str, ends: datetime) -> str:
    """The campaign's last day as each language writes it (the end is exclusive: midnight ends the day before)."""
    day = ends - timedelta(days=1)
    return f"{day.month}月{day.day}日まで" if lang == "ja" else f"until {MONTHS[day.month - 1]} {day.day}"


# ---- trigger = "join": nothing mentions a purchase ----------------------------------------------
@pytest.mark.parametrize("lang", ["ja", "en"])
async def test_under_join_no_customer_text_mentions_a_purchase(bot_with: BotWith, tmp_path: Path, lang: str) -> None:
    rules = variant(tmp_path, FIRST_MILESTONE, referral__trigger='"join"', **EVERY_NOTICE_NOW)
    bot = await bot_with(rewards_config=rules)
    words = WORDS[lang]
    referrer, friend, buyer = await member(bot, lang), await member(bot, lang), await member(bot, lang)
    seen = {"help": await say(bot, referrer, words["help"]), "invite card": await say(bot, referrer, words["invite"])}
    code = await invite_code(bot, referrer, lang)
    seen["invite page"] = await invite_page(bot, code, lang)
    seen["code answer"], seen["referrer's notices"] = await send_code(bot, friend, code, referrer)
    seen["code again"] = await say(bot, friend, f"招待コード {code} で登録します")
    status, _ = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-" + buyer, "user_id": buyer,
                                                               "amount": 500})
    assert status == 200
    seen["a customer's code"] = await say(bot, buyer, f"招待コード {code} で登録します")
    for word in ("referrals", "leaderboard", "gift"):
        seen[word] = await say(bot, referrer, words[word])

    for where, said in seen.items():
        no_purchase(where, said)
    texts = bot.services.texts
    assert "600" not in seen["invite card"] and "500 pt" in seen["invite card"] and "300 pt" in seen["invite card"]
    assert texts.get(lang, "flex_invite_how_join") in seen["invite card"]
    assert texts.get(lang, "invite_page_offer_join", friend_points="300") in seen["invite page"]
    assert texts.get(lang, "referral_ok_join", friend_points="300") in seen["code answer"], "paid on joining"
    assert texts.get(lang, "referral_ok_referrer_join", referrer_points="500") in seen["referrer's notices"]
    assert texts.get(lang, "notice_milestone", count=1, points="100") in seen["referrer's notices"]
    assert texts.get(lang, "refused_ALREADY_REFERRED_join") in seen["code again"]
    assert texts.get(lang, "refused_EXISTING_CUSTOMER") in seen["a customer's code"]
    assert (await bot.services.program.member(friend)).points == 100 + 300, "the code answer told the truth"
    assert not bot.platform.violations


async def test_the_first_purchase_wording_stays_where_the_rules_ask_for_a_purchase(bot: Bot) -> None:
    referrer, friend = await member(bot), await member(bot)
    card = await say(bot, referrer, "招待")
    assert "初めてお買い物" in card and "🔥" not in card, "the default rules: a first purchase, no referral campaign"
    answer, told = await send_code(bot, friend, await invite_code(bot, referrer), referrer)
    assert "初めてのお買い物で 300 ポイント" in answer and "初めてお買い物をすると、あなたに 500 ポイント" in told


# ---- a minimum order, a hold, milestones --------------------------------------------------------
@pytest.mark.parametrize("lang", ["ja", "en"])
async def test_a_minimum_order_and_a_hold_are_stated(bot_with: BotWith, tmp_path: Path, lang: str) -> None:
    bot = await bot_with(rewards_config=variant(tmp_path, referral__minimum_order=3000, referral__hold_days=14,
                                                **EVERY_NOTICE_NOW))
    referrer, friend = await member(bot, lang), await member(bot, lang)
    minimum = "3,000円以上" if lang == "ja" else "¥3,000 or more"
    hold = bot.services.texts.get(lang, "offer_hold", days=14)
    card_messages = await converse(bot.platform, referrer, bot.platform.text(referrer, WORDS[lang]["invite"]))
    card = readable(card_messages)
    assert minimum in share_caption(card_messages), "the caption a friend receives"
    code = await invite_code(bot, referrer, lang)
    page = await invite_page(bot, code, lang)
    answer, told = await send_code(bot, friend, code, referrer)
    for where, said in {"invite card": card, "invite page": page, "code answer": answer, "notice": told}.items():
        assert minimum in said, f"{where} does not state the minimum order: {said}"
        assert hold in said, f"{where} does not state the hold: {said}"
    status = await say(bot, referrer, WORDS[lang]["referrals"])
    assert bot.services.texts.get(lang, "flex_refs_state_FIRST_PURCHASE_MIN", yen="3,000") in status
    mark = len(bot.platform.calls)
    status_code, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": friend,
                                                                       "amount": 3000})
    assert status_code == 200 and body["referral"]["status"] == "completed", body
    await bot.platform.wait_for(lambda: bot.platform.said_to(referrer, mark), 10)
    paid = readable(bot.platform.said_to(referrer, mark))
    assert "500" in paid and hold in paid, f"the completed notice: the points, and that they wait: {paid}"


async def test_milestones_show_only_when_the_rules_have_them(bot_with: BotWith, tmp_path: Path) -> None:
    without = tmp_path / "no-milestones.toml"
    text, removed = re.subn(r"(?m)^\[\[referral\.milestones\]\][^\[]*", "", DEFAULT)
    assert removed == 2
    without.write_text(text, encoding="utf-8")
    bot = await bot_with(rewards_config=without)
    uid = await member(bot)
    status = await say(bot, uid, "紹介状況")
    texts = bot.services.texts
    assert "ボーナス" not in status and texts.get("ja", "flex_refs_milestone_none") not in status, status


# ---- campaigns --------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["ja", "en"])
async def test_during_a_campaign_the_invite_card_shows_the_boosted_amounts_and_the_last_day(
        bot_with: BotWith, tmp_path: Path, lang: str) -> None:
    rules, ends = campaign_rules(tmp_path, '["referral.referrer", "referral.friend"]', **EVERY_NOTICE_NOW)
    bot = await bot_with(rewards_config=rules)
    referrer, friend = await member(bot, lang), await member(bot, lang)
    last_day = until(lang, ends)
    card_messages = await converse(bot.platform, referrer, bot.platform.text(referrer, WORDS[lang]["invite"]))
    card = readable(card_messages)
    assert "1,000 pt" in card and "600 pt" in card, f"the engine's boosted amounts: {card}"
    assert "500 pt" not in card and "300 pt" not in card
    assert last_day in card, card
    caption = share_caption(card_messages)
    assert "600" in caption and last_day in caption, "the caption a friend receives"
    code = await invite_code(bot, referrer, lang)
    page = await invite_page(bot, code, lang)
    assert "600" in page and last_day in page, page
    assert last_day in await say(bot, referrer, WORDS[lang]["referrals"])

    answer, told = await send_code(bot, friend, code, referrer)
    assert "600" in answer and last_day in answer, "the friend's promise, and how long it holds"
    assert "1,000" in told and last_day in told
    before = (await bot.services.program.member(referrer)).points
    mark = len(bot.platform.calls)
    status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": friend,
                                                                  "amount": 2000})
    assert status == 200 and body["referral"]["status"] == "completed", body
    await bot.platform.wait_for(lambda: bot.platform.said_to(referrer, mark), 10)
    assert "1,000" in readable(bot.platform.said_to(referrer, mark)), "the notice says what was paid"
    assert (await bot.services.program.member(referrer)).points - before == 1000, "and that is what was paid"
    assert not bot.platform.violations


async def test_a_campaign_on_other_rules_leaves_the_base_amounts(bot_with: BotWith, tmp_path: Path) -> None:
    rules, ends = campaign_rules(tmp_path, '["purchase", "signup"]')
    bot = await bot_with(rewards_config=rules)
    card = await say(bot, await member(bot), "招待")
    assert "500 pt" in card and "300 pt" in card and "🔥" not in card and until("ja", ends) not in card, card


def test_the_offer_comes_from_the_engine_and_ends_with_the_first_campaign_behind_it(tmp_path: Path) -> None:
    at = datetime(2027, 5, 10, 12, tzinfo=JST)
    at_ms = int(at.timestamp() * 1000)

    def campaign(name: str, rules: str, ends: str, multiplier: float = 1.0, bonus: int = 0,
                 stackable: bool = False) -> str:
        return (f'[[campaigns]]\nname = "{name}"\nstarts = 2027-05-01T00:00:00+09:00\nends = {ends}\n'
                f"rules = {rules}\nmultiplier = {multiplier}\nbonus = {bonus}\nstackable = {str(stackable).lower()}\n")

    plain = referral_offer(load_rules(variant(tmp_path)), at_ms)
    assert (plain.referrer_points, plain.friend_points, plain.boosted, plain.boost_ends) == (500, 300, False, None)
    # the strongest of the non-stackable ones applies; a weaker one ending sooner changes nothing
    both = campaign("strong", '["referral.friend"]', "2027-06-01T00:00:00+09:00", multiplier=3.0) + \
        campaign("weak", '["referral.friend"]', "2027-05-20T00:00:00+09:00", multiplier=2.0) + \
        campaign("bonus", '["referral.referrer"]', "2027-05-25T18:00:00+09:00", bonus=50, stackable=True)
    offer = referral_offer(load_rules(variant(tmp_path, both)), at_ms)
    assert (offer.referrer_points, offer.friend_points, offer.boosted) == (550, 900, True)
    assert offer.boost_ends == datetime(2027, 5, 25, 18, tzinfo=JST), "the stackable bonus ends first"
    later = referral_offer(load_rules(variant(tmp_path, both)), int(datetime(2027, 5, 26, tzinfo=JST).timestamp() * 1000))
    assert (later.referrer_points, later.friend_points, later.boost_ends) == (500, 900, datetime(2027, 6, 1, tzinfo=JST))
    joined = referral_offer(load_rules(variant(tmp_path, referral__trigger='"join"', referral__minimum_order=3000)), at_ms)
    assert joined.on_join and joined.minimum_order == 0, "a minimum order binds only a first purchase"
    given = referral_offer(load_rules(variant(tmp_path, both)), at_ms, gift=True)
    assert (given.gift, given.referrer_points, given.friend_points) == (True, 550, 900 + 550), "both shares"
    no_gifts = load_rules(variant(tmp_path, referral__allow_gift="false"))
    assert not referral_offer(no_gifts, at_ms, gift=True).gift, "only where the rules allow it"


@pytest.mark.parametrize("ends, ja, en", [
    (datetime(2027, 1, 1, tzinfo=JST), "12月31日", "Dec 31"),
    (datetime(2027, 4, 8, 18, 30, tzinfo=JST), "4月8日 18:30", "Apr 8, 18:30"),
])
def test_a_campaigns_last_moment_reads_as_people_say_it(ends: datetime, ja: str, en: str) -> None:
    from bot.config import ASSETS
    from bot.line.i18n import Texts
    texts = Texts(ASSETS / "locales")
    assert last_moment(lambda key, **v: texts.get("ja", key, **v), ends) == ja
    assert last_moment(lambda key, **v: texts.get("en", key, **v), ends) == en


# ---- 相手に譲る: a referrer who gives their share away ------------------------------------------------
@pytest.mark.parametrize("trigger", ["first_purchase", "join"])
async def test_a_referrer_giving_their_share_away_is_told_so_and_the_friend_is_promised_both(
        bot_with: BotWith, tmp_path: Path, trigger: str) -> None:
    bot = await bot_with(rewards_config=variant(tmp_path, referral__trigger=f'"{trigger}"', **EVERY_NOTICE_NOW))
    program = bot.services.program
    referrer, friend = await member(bot), await member(bot)
    await program.set_gift(referrer, True)
    card_messages = await converse(bot.platform, referrer, bot.platform.text(referrer, "招待"))
    card = readable(card_messages)
    assert "友だちに譲る" in card and "800 pt" in card and "500 pt" not in card, card
    assert "800" in share_caption(card_messages)
    code = await invite_code(bot, referrer)
    assert "800 ポイント" in await invite_page(bot, code, "ja")
    answer, told = await send_code(bot, friend, code, referrer)
    assert "800 ポイント" in answer, answer
    assert "あなたの分の" in told and "500 ポイント" in told and "追加しました" not in told, told
    before = (await program.member(referrer)).points
    if trigger == "join":
        no_purchase("the referrer's notice", told)
        assert (await program.member(friend)).points == 100 + 800, "the code answer told the truth"
        return
    mark = len(bot.platform.calls)
    status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": "o-1", "user_id": friend,
                                                                  "amount": 2000})
    assert status == 200 and body["referral"]["status"] == "completed", body
    await bot.platform.wait_for(lambda: bot.platform.said_to(referrer, mark), 10)
    paid = readable(bot.platform.said_to(referrer, mark))
    assert "500 ポイントはお友だちにプレゼント" in paid and "追加しました" not in paid, paid
    assert (await program.member(referrer)).points == before, "nothing was added to the referrer"
    assert (await program.member(friend)).points == 100 + 800 + 20, "the friend got both shares (and 20 for ¥2,000)"


# ---- the LIFF path (LIFF_ID set): the page, its answer, the share card, the follow's reply ----------------
async def liff_page(bot: Bot, code: str, lang: str) -> tuple[str, str]:
    """The LIFF page's visible text and its share card's text."""
    import html
    import json

    async with bot.http.get(f"{bot.url}/liff/invite?code={code}", headers={"Accept-Language": lang}) as r:
        assert r.status == 200
        page = await r.text()
    found = re.search(r'data-card="([^"]*)"', page)
    assert found, "no share card in the page"
    card = readable([json.loads(html.unescape(found.group(1)))])
    return re.sub(r"\s+", " ", re.sub(r"(?s)<style>.*?</style>|<script.*?</script>|<[^>]+>", " ", page)), card


async def liff_attribution(bot: Bot, uid: str, code: str, lang: str) -> dict:
    async with bot.http.post(f"{bot.url}/liff/v1/attribution", headers={"Accept-Language": lang},
                             json={"id_token": bot.platform.id_token(uid), "code": code}) as r:
        assert r.status == 200
        return dict(await r.json())


@pytest.mark.parametrize("lang", ["ja", "en"])
async def test_under_join_the_liff_path_never_mentions_a_purchase(bot_with: BotWith, tmp_path: Path,
                                                                  lang: str) -> None:
    from linesim.platform import LIFF_ID, LOGIN_CHANNEL_ID

    bot = await bot_with(liff_id=LIFF_ID, line_login_channel_id=LOGIN_CHANNEL_ID,
                         rewards_config=variant(tmp_path, referral__trigger='"join"', **EVERY_NOTICE_NOW))
    referrer = await member(bot, lang)
    code = await bot.services.program.invite_code(referrer)
    page, card = await liff_page(bot, code, lang)
    friend = new_user_id()
    awaiting = await liff_attribution(bot, friend, code, lang)
    assert awaiting["status"] == "awaiting_follow", awaiting
    followed = readable(await converse(bot.platform, friend, bot.platform.follow(friend, language=lang)))
    again = await liff_attribution(bot, friend, code, lang)
    seen = {"LIFF page": page, "share card": card, "awaiting answer": awaiting["message"],
            "the follow's reply": followed, "pending answer": again["message"]}
    for where, said in seen.items():
        no_purchase(where, said)
    texts = bot.services.texts
    assert texts.get(lang, "liff_share_offer_join", friend_points="300") in card
    assert texts.get(lang, "referral_ok_join", friend_points="300") in followed
    assert (await bot.services.program.member(friend)).points == 100 + 300


async def test_during_a_campaign_the_liff_page_and_share_card_show_the_boosted_amount_and_the_last_day(
        bot_with: BotWith, tmp_path: Path) -> None:
    from linesim.platform import LIFF_ID, LOGIN_CHANNEL_ID

    rules, ends = campaign_rules(tmp_path, '["referral.friend"]')
    bot = await bot_with(liff_id=LIFF_ID, line_login_channel_id=LOGIN_CHANNEL_ID, rewards_config=rules)
    code = await bot.services.program.invite_code(await member(bot))
    page, card = await liff_page(bot, code, "ja")
    for where, said in {"LIFF page": page, "share card": card}.items():
        assert "600 ポイント" in said and until("ja", ends) in said, f"{where}: {said}"
    answer = await liff_attribution(bot, new_user_id(), code, "ja")
    assert "600 ポイント" in answer["message"], answer


# ---- the profile card offers English -------------------------------------------------------------
def quick_labels(messages: list[dict]) -> list[str]:
    return [item["action"]["label"] for item in messages[-1].get("quickReply", {}).get("items", [])]


async def tap(platform: Platform, uid: str, messages: list[dict], label: str) -> list[dict]:
    item = next(i for i in messages[-1]["quickReply"]["items"] if i["action"]["label"] == label)
    return await converse(platform, uid, platform.postback(uid, item["action"]["data"]))


@pytest.mark.parametrize("lang", ["ja", "en"])
async def test_the_profile_card_offers_both_languages_each_in_its_own(bot: Bot, lang: str) -> None:
    platform = bot.platform
    uid = await member(bot, lang)
    card = await converse(platform, uid, platform.text(uid, WORDS[lang]["profile"]))
    assert {"日本語", "English"} <= set(quick_labels(card)), quick_labels(card)
    chosen = await tap(platform, uid, card, "English")  # for an English speaker: the language they read
    view = await bot.services.program.member(uid)
    assert view.language == "en" and view.language_chosen
    assert "I'll speak English" in text_of(chosen) and {"日本語", "English"} <= set(quick_labels(chosen))
    assert not platform.violations


async def test_an_english_speaker_earns_the_profile_points_in_english(bot: Bot) -> None:
    platform = bot.platform
    uid = await member(bot, "en")
    picked = await converse(platform, uid, platform.text(uid, "profile"))
    picker = next(i["action"] for i in picked[-1]["quickReply"]["items"] if i["action"]["type"] == "datetimepicker")
    confirm = await converse(platform, uid, platform.postback(uid, picker["data"], {"date": "1990-04-12"}))
    await tap(platform, uid, confirm, "Yes")
    before = (await bot.services.program.member(uid)).points
    card = await converse(platform, uid, platform.text(uid, "profile"))
    done = await tap(platform, uid, card, "English")
    assert "Profile complete" in text_of(done), text_of(done)
    view = await bot.services.program.member(uid)
    assert view.points == before + 50 and view.language == "en"


# ---- one name per person ----------------------------------------------------------------------
async def test_the_referral_status_and_the_leaderboard_name_a_friend_alike_and_the_member_you(
        bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(rewards_config=variant(tmp_path, referral__trigger='"join"'))
    program = bot.services.program
    a, hana, quiet = await member(bot), await member(bot), await member(bot, "en")
    await program.set_nickname(hana, "ハナ", True)
    await program.set_nickname(quiet, "Secret", False)  # a nickname without consent never shows
    code_a = await program.invite_code(a)
    for friend in (hana, quiet):
        await send_code(bot, friend, code_a, a)
    masked = f"会員 {masked_label(quiet)}"
    status_before = await say(bot, a, "紹介状況")
    assert "ハナ" in status_before and masked in status_before and "Secret" not in status_before, status_before
    # the friends refer in turn, so they are on the leaderboard too (the quiet one gets an invite code now:
    # their label stays the same)
    for referrer in (hana, quiet):
        await send_code(bot, await member(bot), await program.invite_code(referrer), referrer)
    status = await say(bot, a, "紹介状況")
    board = await say(bot, a, "ランキング")
    assert masked in status and masked in board and "ハナ" in status and "ハナ" in board, (status, board)
    assert "あなた" in board and f"会員 {masked_label(a)}" not in board, "the member reads themself as you"
    theirs = await say(bot, quiet, "leaderboard")
    assert "You" in theirs and f"Member {masked_label(a)}" in theirs and "ハナ" in theirs, theirs
    assert "Secret" not in board + theirs


# ---- the rewards carousel ---------------------------------------------------------------------
@pytest.mark.parametrize("lang, toward, away", [("ja", "左", "右"), ("en", "left", "right")])
async def test_the_rewards_carousel_hint_points_the_way_it_runs(bot: Bot, lang: str, toward: str, away: str) -> None:
    uid = await member(bot, lang)
    said = await converse(bot.platform, uid, bot.platform.text(uid, WORDS[lang]["rewards"]))
    carousel: dict[str, Any] = next(m for m in said if m["type"] == "flex")["contents"]
    assert carousel["type"] == "carousel" and len(carousel["contents"]) > 1
    head, rewards = carousel["contents"][0], carousel["contents"][1:]
    hint = bot.services.texts.get(lang, "flex_catalog_pick")
    assert hint in text_of([head]) and all(hint not in text_of([r]) for r in rewards), "the head comes first"
    assert all(b.get("direction", "ltr") == "ltr" for b in carousel["contents"]), "laid out left to right"
    assert toward in hint and away not in hint, "so the rewards to the right come in with a swipe left"


# ---- the invite page in a browser: the campaign shows while it runs, the hold when the rules hold points ----
@pytest.mark.browser
async def test_the_invite_page_shows_a_running_campaign_and_a_hold_in_a_browser(bot_with: BotWith,
                                                                                tmp_path: Path) -> None:
    from tests.test_console_browser import CHROMIUM_ARGS, WAIT_MS, chromium_path, playwright_api

    executable, api = chromium_path(), playwright_api()
    rules, ends = campaign_rules(tmp_path, '["referral.friend"]', referral__hold_days=7)
    boosted = await bot_with(rewards_config=rules)
    code = await boosted.services.program.invite_code(await member(boosted))
    async with api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 420, "height": 900}, locale="ja-JP")
            await page.goto(f"{boosted.url}/i/{code}")
            campaign, hold = page.locator("#campaign"), page.locator("#hold")
            await api.expect(campaign).to_be_visible(timeout=WAIT_MS)
            assert until("ja", ends) in await campaign.inner_text()
            assert "600 ポイント" in await page.locator(".offer").inner_text(), "the boosted amount"
            assert "7 日後" in await hold.inner_text() and await hold.is_visible()
            boosted.services.program.clock = lambda: ends.timestamp() + 60  # the campaign is over
            await page.goto(f"{boosted.url}/i/{code}")
            await api.expect(page.locator(".offer")).to_contain_text("300 ポイント", timeout=WAIT_MS)
            assert not await page.locator("#campaign").is_visible(), "no campaign, no empty banner"
        finally:
            await browser.close()
