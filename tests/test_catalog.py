"""The reward catalog: refusals as a table, a claim end to end in chat, code pools, exactly-once under
concurrency, and crash recovery of half-done claims. Real Redis, LINE played by the stand-in."""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bot.infra.redis_conn import connect
from bot.line.limits import actions as _actions
from handlers.rewards_catalog import ConfirmClaim, ShowReward
from linesim.phone import decode_qr
from linesim.platform import new_user_id, text_of
from rewards import catalog as cat
from rewards import keys
from rewards.catalog import Catalog, ClaimResult
from rewards.program import Program
from rewards.rules import load_rules
from tests.support.harness import PUBLIC, Bot, BotWith, converse, pack
from tests.support.rules_helpers import DEFAULT, Clock

REWARDS = """
[[rewards]]
id = "sticker"
cost = 10
stock = 10
valid_days = 7
name = { ja = "ステッカー", en = "A sticker" }
description = { ja = "お店のロゴ入り。", en = "With our logo." }

[[rewards]]
id = "limited"
cost = 10
per_member = 1
name = { ja = "おひとり1回", en = "Once each" }

[[rewards]]
id = "gold_only"
cost = 10
tier = "gold"
name = { ja = "ゴールド限定", en = "Gold only" }

[[rewards]]
id = "gone"
cost = 10
available_until = 2020-01-01T00:00:00+09:00
name = { ja = "終わった特典", en = "Over" }

[[rewards]]
id = "soon"
cost = 10
available_from = 2099-01-01T00:00:00+09:00
name = { ja = "これからの特典", en = "Not yet" }

[[rewards]]
id = "none_left"
cost = 10
stock = 0
name = { ja = "品切れ", en = "Sold out" }

[[rewards]]
id = "pricey"
cost = 100000
name = { ja = "高い特典", en = "Pricey" }

[[rewards]]
id = "voucher"
cost = 50
issue = "pool"
name = { ja = "提携クーポン", en = "Partner voucher" }

[[rewards]]
id = "gift"
cost = 20
issue = "manual"
name = { ja = "店頭プレゼント", en = "A gift" }
"""

COUPON_LINK = re.compile(re.escape(PUBLIC) + r"/c/([A-Za-z0-9_-]{22})")
IMG = re.compile(r'<img class="qr" id="qr" src="([^"]+)"')


def write_rules(tmp: Path) -> Path:
    path = tmp / "rules-catalog.toml"
    path.write_text(DEFAULT + "\n" + REWARDS, encoding="utf-8")  # the tests' rules (pace out of reach)
    return path


@dataclass
class Shop:
    redis: aioredis.Redis
    program: Program
    catalog: Catalog
    clock: Clock

    async def member(self, points: int = 0) -> str:
        uid = new_user_id()
        await self.program.see(uid, "follow", self.clock.ms)
        if points:
            await self.program.adjust(uid, points, "test", "test", f"seed:{uid}")
        return uid

    async def points(self, uid: str) -> int:
        view = await self.program.member(uid)
        assert view is not None
        return view.points

    async def claim_entries(self, uid: str) -> list[dict]:
        return [e for e in await self.program.ledger(uid) if e["kind"] == "claim"]

    async def claim(self, uid: str, reward_id: str) -> ClaimResult:
        offer = await self.catalog.show(uid, reward_id)
        assert offer is not None
        return await self.catalog.confirm(uid, offer.claim_id)


@pytest_asyncio.fixture
async def shop(clean_redis: str, tmp_path: Path) -> AsyncIterator[Shop]:
    rules = load_rules(write_rules(tmp_path))
    redis = connect(clean_redis)
    clock = Clock()
    program = Program(redis, rules)
    yield Shop(redis, program, Catalog(redis, program, rules, clock=clock), clock)
    await redis.aclose()


@pytest_asyncio.fixture
async def shop_bot(bot_with: BotWith, tmp_path: Path) -> Bot:
    return await bot_with(rewards_config=write_rules(tmp_path))


# ---- refusals: a table ---------------------------------------------------------------------
async def _limit_used(shop: Shop, uid: str) -> None:
    assert (await shop.claim(uid, "limited")).ok


async def _in_debt(shop: Shop, uid: str) -> None:
    await shop.program.adjust(uid, -300, "refund after spending", "test", f"debt:{uid}")
    view = await shop.program.member(uid)
    assert view is not None and view.debt > 0


async def _nothing(shop: Shop, uid: str) -> None:
    return None


Setup = Callable[[Shop, str], Awaitable[None]]
REFUSALS: list[tuple[str, str, Setup]] = [
    (cat.OUT_OF_STOCK, "none_left", _nothing),
    (cat.NOT_ENOUGH_POINTS, "pricey", _nothing),
    (cat.TIER_TOO_LOW, "gold_only", _nothing),
    (cat.NOT_AVAILABLE, "gone", _nothing),
    (cat.NOT_AVAILABLE, "soon", _nothing),
    (cat.LIMIT_REACHED, "limited", _limit_used),
    (cat.IN_DEBT, "sticker", _in_debt),
]


@pytest.mark.parametrize("reason, reward_id, setup", REFUSALS, ids=[f"{r}-{w}" for r, w, _ in REFUSALS])
async def test_refusals(shop: Shop, reason: str, reward_id: str, setup: Setup) -> None:
    uid = await shop.member(points=100)
    await setup(shop, uid)
    balance, entries = await shop.points(uid), len(await shop.claim_entries(uid))
    reward = shop.catalog.rules.reward(reward_id)
    assert reward is not None
    before = await shop.catalog.stock(reward)

    offer = await shop.catalog.show(uid, reward_id)
    assert offer is not None
    assert offer.refusal == reason, "the details already say why"
    result = await shop.catalog.confirm(uid, offer.claim_id)
    assert (result.ok, result.reason) == (False, reason)
    again = await shop.catalog.confirm(uid, offer.claim_id)
    assert (again.ok, again.reason) == (False, reason)

    assert await shop.points(uid) == balance
    assert len(await shop.claim_entries(uid)) == entries
    assert await shop.catalog.stock(reward) == before
    assert len(await shop.catalog.coupons(uid)) == (1 if reason == cat.LIMIT_REACHED else 0)
    assert set(cat.REASONS) >= {reason}


async def test_unknown_claims(shop: Shop) -> None:
    a, b = await shop.member(points=100), await shop.member(points=100)
    for claim_id in ("A" * 16, "not a claim id", "", "x" * 300):
        assert (await shop.catalog.confirm(a, claim_id)).reason == cat.UNKNOWN_CLAIM

    offer = await shop.catalog.show(a, "sticker")
    assert offer is not None
    stolen = await shop.catalog.confirm(b, offer.claim_id)
    assert (stolen.ok, stolen.reason) == (False, cat.UNKNOWN_CLAIM), "another member's claim id"
    assert await shop.points(b) == 100

    shop.clock.advance(days=1, minutes=1)
    expired = await shop.catalog.confirm(a, offer.claim_id)
    assert (expired.ok, expired.reason) == (False, cat.UNKNOWN_CLAIM)
    assert await shop.points(a) == 100 and await shop.catalog.coupons(a) == []
    assert (await shop.catalog.show(a, "no-such-reward")) is None


async def test_a_refusal_before_anything_is_held_leaves_the_claim_open(shop: Shop) -> None:
    uid = await shop.member(points=5)
    offer = await shop.catalog.show(uid, "sticker")
    assert offer is not None and offer.refusal == cat.NOT_ENOUGH_POINTS
    assert (await shop.catalog.confirm(uid, offer.claim_id)).reason == cat.NOT_ENOUGH_POINTS
    await shop.program.adjust(uid, 10, "bought something", "test", "more")
    later = await shop.catalog.confirm(uid, offer.claim_id)
    assert later.ok and later.coupon is not None
    assert await shop.points(uid) == 5


# ---- exactly once --------------------------------------------------------------------------
async def test_fifty_concurrent_confirms_of_one_claim_spend_once(shop: Shop) -> None:
    uid = await shop.member(points=100)
    offer = await shop.catalog.show(uid, "sticker")
    assert offer is not None and offer.refusal is None

    results = await asyncio.gather(*(shop.catalog.confirm(uid, offer.claim_id) for _ in range(50)))

    assert all(r.ok for r in results), {r.reason for r in results}
    assert sum(r.new for r in results) == 1
    assert len({r.coupon for r in results}) == 1, "every answer shows the same coupon"
    assert await shop.points(uid) == 90
    entries = await shop.claim_entries(uid)
    assert len(entries) == 1 and entries[0]["delta"] == -10
    assert len(await shop.catalog.coupons(uid)) == 1
    reward = shop.catalog.rules.reward("sticker")
    assert reward is not None
    stock = await shop.catalog.stock(reward)
    assert (stock.left, stock.taken, stock.claimed, stock.held) == (9, 1, 1, 0)


async def test_fifty_members_race_for_ten_in_stock(shop: Shop) -> None:
    members = [await shop.member(points=100) for _ in range(50)]
    offers = [await shop.catalog.show(uid, "sticker") for uid in members]
    stock_key = keys.reward_stock("sticker")
    seen: list[int] = []
    racing = True

    async def watch() -> None:
        while racing:
            seen.append(int(await shop.redis.hget(stock_key, "taken") or 0))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(shop.catalog.confirm(uid, offer.claim_id)
                                     for uid, offer in zip(members, offers, strict=True) if offer))
    racing = False
    await watcher

    assert sum(r.ok for r in results) == 10
    assert [r.reason for r in results if not r.ok] == [cat.OUT_OF_STOCK] * 40
    assert max(seen) <= 10, "more was held than there is"
    reward = shop.catalog.rules.reward("sticker")
    assert reward is not None
    stock = await shop.catalog.stock(reward)
    assert (stock.left, stock.taken, stock.claimed, stock.held) == (0, 10, 10, 0)
    for uid, result in zip(members, results, strict=True):
        assert await shop.points(uid) == (90 if result.ok else 100)
        assert len(await shop.claim_entries(uid)) == (1 if result.ok else 0), "a refused member spent points"
    codes = {r.coupon.code for r in results if r.coupon}
    assert len(codes) == 10


# ---- code pools ----------------------------------------------------------------------------
async def test_pool_codes_are_given_out_once_each(shop_bot: Bot) -> None:
    status, body = await shop_bot.admin("POST", "/api/v1/rewards/voucher/codes",
                                        {"codes": ["PARTNER-001", "PARTNER-002", "PARTNER-003", "PARTNER-001"]})
    assert status == 200, body
    assert (body["added"], body["skipped"], body["pool"]) == (3, 1, 3)
    status, body = await shop_bot.admin("POST", "/api/v1/rewards/voucher/codes", {"codes": ["PARTNER-002"]})
    assert (status, body["added"], body["pool"]) == (200, 0, 3), "an upload repeated adds nothing"
    assert (await shop_bot.admin("POST", "/api/v1/rewards/sticker/codes", {"codes": ["X"]}))[0] == 409
    assert (await shop_bot.admin("POST", "/api/v1/rewards/nope/codes", {"codes": ["X"]}))[0] == 404
    assert (await shop_bot.admin("POST", "/api/v1/rewards/voucher/codes", {"codes": ["has space"]}))[0] == 400

    catalog, program = shop_bot.services.catalog, shop_bot.services.program
    members = []
    for _ in range(4):
        uid = new_user_id()
        await program.see(uid, "follow", int(time.time() * 1000))
        await program.adjust(uid, 100, "test", "test", f"seed:{uid}")
        members.append(uid)
    results = await asyncio.gather(*(_claim(catalog, uid, "voucher") for uid in members))
    issued = sorted(r.coupon.code for r in results if r.ok and r.coupon)
    assert issued == ["PARTNER-001", "PARTNER-002", "PARTNER-003"]
    assert [r.reason for r in results if not r.ok] == [cat.OUT_OF_STOCK], "an empty pool is out of stock"
    status, body = await shop_bot.admin("GET", "/api/v1/rewards")
    voucher = next(r for r in body["rewards"] if r["id"] == "voucher")
    assert (voucher["pool"], voucher["left"], voucher["claimed"]) == (0, 0, 3)


async def _claim(catalog: Catalog, uid: str, reward_id: str) -> ClaimResult:
    offer = await catalog.show(uid, reward_id)
    assert offer is not None
    return await catalog.confirm(uid, offer.claim_id)


# ---- a crash between steps -----------------------------------------------------------------
class Crash(Exception):
    pass


async def test_a_claim_that_crashed_before_spending_gives_its_stock_back(shop: Shop, monkeypatch) -> None:
    await shop.catalog.add_codes("voucher", ["ONLY-ONE"])
    uid = await shop.member(points=100)
    offer = await shop.catalog.show(uid, "voucher")
    assert offer is not None

    async def crash(*args: object, **kwargs: object) -> tuple[int, int]:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(shop.program, "spend", crash)
        with pytest.raises(Crash):
            await shop.catalog.confirm(uid, offer.claim_id)
    reward = shop.catalog.rules.reward("voucher")
    assert reward is not None
    assert (await shop.catalog.stock(reward)).pool == 0, "the code is held for the claim"

    assert await shop.catalog.release_stale(shop.clock.ms) == 0, "too fresh to be stale"
    shop.clock.advance(minutes=cat.STALE_MINUTES + 1)
    assert await shop.catalog.release_stale(shop.clock.ms) == 1
    assert await shop.catalog.release_stale(shop.clock.ms) == 0
    stock = await shop.catalog.stock(reward)
    assert (stock.pool, stock.taken, stock.held) == (1, 0, 0), "the code went back to the pool"
    assert (await shop.catalog.confirm(uid, offer.claim_id)).reason == cat.UNKNOWN_CLAIM
    assert await shop.points(uid) == 100
    again = await _claim(shop.catalog, uid, "voucher")
    assert again.ok and again.coupon is not None and again.coupon.code == "ONLY-ONE"


async def test_a_claim_that_crashed_after_spending_is_completed(shop: Shop, monkeypatch) -> None:
    uid = await shop.member(points=100)
    offer = await shop.catalog.show(uid, "sticker")
    assert offer is not None

    async def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(shop.catalog, "_finish", crash)
        with pytest.raises(Crash):
            await shop.catalog.confirm(uid, offer.claim_id)
    assert await shop.points(uid) == 90 and await shop.catalog.coupons(uid) == []

    shop.clock.advance(minutes=cat.STALE_MINUTES + 1)
    assert await shop.catalog.release_stale(shop.clock.ms) == 0, "paid for: completed, not released"
    coupons = await shop.catalog.coupons(uid)
    assert len(coupons) == 1
    reward = shop.catalog.rules.reward("sticker")
    assert reward is not None
    stock = await shop.catalog.stock(reward)
    assert (stock.taken, stock.claimed, stock.held) == (1, 1, 0)
    tapped = await shop.catalog.confirm(uid, offer.claim_id)
    assert tapped.ok and tapped.coupon == coupons[0] and not tapped.new
    assert await shop.points(uid) == 90


async def test_stock_can_be_added_by_staff(shop_bot: Bot) -> None:
    status, body = await shop_bot.admin("POST", "/api/v1/rewards/none_left/stock", {"add": 2})
    assert (status, body["left"], body["stock"]) == (200, 2, 2)
    status, body = await shop_bot.admin("POST", "/api/v1/rewards/none_left/stock", {"add": -3})
    assert (status, body["error"]["code"]) == (409, "NOT_ENOUGH_STOCK")
    assert (await shop_bot.admin("POST", "/api/v1/rewards/pricey/stock", {"add": 1}))[0] == 409
    assert (await shop_bot.admin("POST", "/api/v1/rewards/nope/stock", {"add": 1}))[0] == 404
    assert (await shop_bot.admin("POST", "/api/v1/rewards/none_left/stock", {"add": 0}))[0] == 400
    assert (await shop_bot.admin("POST", "/api/v1/rewards/none_left/stock", {"add": 1}, token=None))[0] == 401
    audit = await shop_bot.services.redis.xrange(keys.AUDIT)
    assert [e[1][b"what"] for e in audit] == [b"add_stock"]


# ---- in chat, end to end ---------------------------------------------------------------------
def postbacks(messages: list[dict]) -> dict[str, str]:
    """label -> data of the postback buttons in the last message: its Flex card and its quick replies."""
    return {a["label"]: a["data"] for a in _actions(messages[-1]) if a["type"] == "postback"}


def local(bot: Bot, url: str) -> str:
    assert url.startswith(PUBLIC)
    return bot.url + url[len(PUBLIC):]


async def test_a_claim_in_chat_from_catalog_to_the_counter(shop_bot: Bot) -> None:
    bot, platform = shop_bot, shop_bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    status, body = await bot.admin("POST", f"/api/v1/members/{uid}/adjustments", {"points": 1000, "reason": "test"})
    assert status == 200 and body["points"] == 1100, body

    listing = await converse(platform, uid, platform.text(uid, "特典"))
    shown = text_of(listing)
    assert "1,100 pt" in shown and "コーヒー1杯無料" in shown and "残り 500" in shown
    assert "終わった特典" not in shown and "これからの特典" not in shown, "outside their window"
    buttons = postbacks(listing)
    assert buttons["コーヒー1杯無料"] == pack(ShowReward("coffee"))
    assert all(len(label) <= 20 for label in buttons)

    details = await converse(platform, uid, platform.postback(uid, buttons["コーヒー1杯無料"]))
    assert "300 pt" in text_of(details)
    confirm = next(data for data in postbacks(details).values() if data.startswith(ConfirmClaim.prefix + "|"))
    assert len(confirm) <= 300 and uid not in confirm

    answer = await converse(platform, uid, platform.postback(uid, confirm))
    said = text_of(answer)
    link = COUPON_LINK.search(said)
    assert link, said
    token = link.group(1)
    assert "800 pt" in said
    status, member = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert member["points"] == 1100 - 300

    repeat = await converse(platform, uid, platform.postback(uid, confirm))
    assert text_of(repeat) == said, "the same answer again, nothing spent twice"
    assert (await bot.admin("GET", f"/api/v1/members/{uid}"))[1]["points"] == 800

    mine = await converse(platform, uid, platform.text(uid, "クーポン"))
    assert link.group(0) in text_of(mine) and "使えます" in text_of(mine)
    status, body = await bot.admin("GET", "/api/v1/rewards")
    coffee = next(r for r in body["rewards"] if r["id"] == "coffee")
    assert (coffee["cost"], coffee["left"], coffee["claimed"]) == (300, 499, 1)

    async with bot.http.get(local(bot, link.group(0))) as r:
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        page = await r.text()
    assert "コーヒー1杯無料" in page and uid not in page
    qr_url = IMG.search(page)
    assert qr_url
    async with bot.http.get(local(bot, qr_url.group(1))) as r:
        assert r.status == 200 and r.content_type == "image/png"
        png = await r.read()
    decoded = decode_qr(png)
    assert decoded == token, "the QR carries what staff redeem with"

    status, used = await bot.admin("POST", f"/api/v1/coupons/{token}/use")
    assert status == 200 and used["used"] and used["user_id"] == uid and used["reward"] == "coffee"
    status, again = await bot.admin("POST", f"/api/v1/coupons/{token}/use")
    assert (status, again["error"]["code"]) == (409, "ALREADY_USED")
    status, unknown = await bot.admin("POST", "/api/v1/coupons/" + "x" * 22 + "/use")
    assert (status, unknown["error"]["code"]) == (404, "UNKNOWN_COUPON")
    audit = await bot.services.redis.xrange(keys.AUDIT)
    assert [e[1][b"what"] for e in audit].count(b"use_coupon") == 1

    async with bot.http.get(local(bot, link.group(0))) as r:
        assert "使用済み" in await r.text()
    async with bot.http.get(bot.url + "/c/" + "y" * 22) as r:
        assert r.status == 404
    async with bot.http.get(bot.url + "/c/" + "y" * 22 + ".png") as r:
        assert r.status == 404
    mine = await converse(platform, uid, platform.text(uid, "クーポン"))
    assert "使用済み" in text_of(mine)
    history = await converse(platform, uid, platform.text(uid, "ポイント"))
    assert "-300 pt" in text_of(history)


async def test_refusals_in_chat_are_kind_and_offer_no_confirm(shop_bot: Bot) -> None:
    platform = shop_bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid, language="en"))
    details = await converse(platform, uid, platform.postback(uid, pack(ShowReward("pricey"))))
    assert "100,000 pt" in text_of(details) and "99,900 pt to go" in text_of(details)
    assert not any(d.startswith(ConfirmClaim.prefix + "|") for d in postbacks(details).values())
    gold = await converse(platform, uid, platform.postback(uid, pack(ShowReward("gold_only"))))
    assert "Gold members and up" in text_of(gold)
    stale = await converse(platform, uid, platform.postback(uid, pack(ConfirmClaim("Z" * 16))))
    assert "expired" in text_of(stale)
    unknown = await converse(platform, uid, platform.postback(uid, pack(ShowReward("no-such-reward"))))
    assert "can't be claimed right now" in text_of(unknown)
    empty = await converse(platform, uid, platform.text(uid, "coupons"))
    assert "No coupons yet" in text_of(empty)


async def test_fifty_taps_on_one_confirm_through_the_webhook(shop_bot: Bot) -> None:
    bot, platform = shop_bot, shop_bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    details = await converse(platform, uid, platform.postback(uid, pack(ShowReward("sticker"))))
    confirm = next(data for data in postbacks(details).values() if data.startswith(ConfirmClaim.prefix + "|"))

    mark = len(platform.calls)
    statuses = await asyncio.gather(*(platform.send(platform.postback(uid, confirm)) for _ in range(50)))
    assert statuses == [200] * 50
    answers = await platform.wait_for(lambda: len(platform.said_to(uid, mark)) >= 50 and platform.said_to(uid, mark),
                                      timeout=30)
    assert len(answers) == 50
    links = {COUPON_LINK.search(text_of([m])).group(1) for m in answers}  # type: ignore[union-attr]
    assert len(links) == 1, "every tap shows the same coupon"
    status, member = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert member["points"] == 100 - 10
    entries = [e for e in await bot.services.program.ledger(uid) if e["kind"] == "claim"]
    assert len(entries) == 1
    assert len(await bot.services.catalog.coupons(uid)) == 1


async def test_tampered_or_forged_postback_data_is_refused_and_changes_nothing(shop_bot: Bot) -> None:
    bot, platform = shop_bot, shop_bot.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    details = await converse(platform, uid, platform.postback(uid, pack(ShowReward("sticker"))))
    confirm = next(data for data in postbacks(details).values() if data.startswith(ConfirmClaim.prefix + "|"))
    body, mac = confirm.rsplit("|", 1)
    forged = [
        body + "|" + ("A" if mac[0] != "A" else "B") + mac[1:],  # the mac edited
        body.replace(body.split("|")[1], "X" * 16) + "|" + mac,  # the claim id edited
        body + "|extra|" + mac,  # a field added
        ConfirmClaim.prefix + "|" + "Z" * 16,  # no mac at all
        ShowReward("sticker").pack(b"another channel's key"),  # signed with another key
    ]
    for data in forged:
        said = await converse(platform, uid, platform.postback(uid, data))
        assert "使えなくなりました" in text_of(said), data
    status, member = await bot.admin("GET", f"/api/v1/members/{uid}")
    assert member["points"] == 100, "nothing was spent"
    assert not platform.violations
