"""Points spent as a Shopify discount code: one code per claim (one use, the linked customer), Shopify failing
then succeeding, failing for good (the points back exactly once), a crash between Shopify's answer and our write
(the retry adopts the same code), the cost bucket respected, double taps, the rules' and settings' mistakes.
Real Redis; Shopify's Admin API played by linesim/shopify_admin.py over HTTP, LINE by its stand-in."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bot.config import SHOPIFY_API_VERSION, ConfigError, Settings
from bot.infra.redis_conn import connect
from bot.shopify.admin import ShopifyAdmin
from handlers.rewards_catalog import ShowReward
from linesim.platform import new_user_id, text_of
from linesim.shopify_admin import ShopifyAdminStandIn
from rewards import catalog as cat
from rewards.catalog import Catalog, ClaimResult
from rewards.program import Program
from rewards.rules import RulesError, load_rules
from rewards.shop_discounts import SHOP_UNAVAILABLE, ShopDiscount, discount_code
from tests.support.harness import Bot, BotWith, converse, pack
from tests.support.rules_helpers import DEFAULT, Clock

TOKEN = "shpat_test_token"
SHOP = "shokai-test.myshopify.com"

REWARDS = """
[[rewards]]
id = "tenpercent"
cost = 100
issue = "shopify_discount"
percent_off = 10
name = { ja = "10%オフ", en = "10% off" }
"""


def shop_settings(url: str, token: str = TOKEN, **more: object) -> Settings:
    values: dict[str, object] = dict(
        channel_secret="s", channel_access_token="t", public_base_url="https://shop.example.test",
        shopify_shop=SHOP, shopify_admin_token=token, shopify_api_base_url=url, shopify_timeout_seconds=0.5,
        shopify_retry_base_seconds=0.01)
    values.update(more)
    return Settings(**values)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def shopify() -> AsyncIterator[ShopifyAdminStandIn]:
    stand_in = ShopifyAdminStandIn(token=TOKEN, timeout_seconds=3.0)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@dataclass
class Store:
    redis: aioredis.Redis
    program: Program
    catalog: Catalog
    clock: Clock
    admin: ShopifyAdmin
    shopify: ShopifyAdminStandIn

    async def member(self, points: int = 0, customer: str | None = None) -> str:
        uid = new_user_id()
        await self.program.see(uid, "follow", self.clock.ms)
        if points:
            await self.program.adjust(uid, points, "test", "test", f"seed:{uid}")
        if customer:
            await self.program.links.remember_link_token(f"lt-{uid}", uid)
            nonce = await self.program.links.create_nonce(f"lt-{uid}", customer)
            assert (await self.program.links.account_link(uid, "ok", nonce, f"ev-{uid}")).ok
        return uid

    async def points(self, uid: str) -> int:
        view = await self.program.member(uid)
        assert view is not None
        return view.points

    async def entries(self, uid: str, kind: str) -> list[dict]:
        return [e for e in await self.program.ledger(uid) if e["kind"] == kind]

    async def offer(self, uid: str, reward_id: str = "online500") -> str:
        offer = await self.catalog.show(uid, reward_id)
        assert offer is not None and offer.refusal is None, offer
        return offer.claim_id

    async def claim(self, uid: str, reward_id: str = "online500") -> ClaimResult:
        return await self.catalog.confirm(uid, await self.offer(uid, reward_id))


def write_rules(tmp: Path) -> Path:
    path = tmp / "rules-shopify.toml"
    path.write_text(DEFAULT + "\n" + REWARDS, encoding="utf-8")
    return path


@pytest_asyncio.fixture
async def store(clean_redis: str, tmp_path: Path, shopify: ShopifyAdminStandIn) -> AsyncIterator[Store]:
    rules = load_rules(write_rules(tmp_path))
    redis = connect(clean_redis)
    clock = Clock()
    program = Program(redis, rules)
    admin = ShopifyAdmin(shop_settings(shopify.url))
    yield Store(redis, program, Catalog(redis, program, rules, clock=clock, shop=admin), clock, admin, shopify)
    await admin.close()
    await redis.aclose()


def made(shopify: ShopifyAdminStandIn) -> list[str]:
    return [d.code for d in shopify.discounts.values()]


# ---- a claim makes one code ------------------------------------------------------------------------------------
async def test_a_claim_makes_one_code_for_one_use_by_the_linked_customer(store: Store) -> None:
    uid = await store.member(points=1000, customer="7001")
    claim_id = await store.offer(uid)
    result = await store.catalog.confirm(uid, claim_id)
    assert result.ok and result.new and result.coupon is not None
    code = discount_code(claim_id)
    assert result.coupon.code == code and result.coupon.issue == "shopify_discount"
    assert re.fullmatch(r"SK-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", code)
    assert made(store.shopify) == [code]
    sent = store.shopify.discounts[code].input
    assert sent["usageLimit"] == 1 and sent["appliesOncePerCustomer"] is True
    assert sent["context"] == {"customers": {"add": ["gid://shopify/Customer/7001"]}}
    assert sent["customerGets"]["value"] == {"discountAmount": {"amount": "500", "appliesOnEachItem": False}}
    assert sent["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "3000"}}
    assert sent["endsAt"] > sent["startsAt"] and claim_id in sent["title"]
    assert store.shopify.calls[0]["version"] == SHOPIFY_API_VERSION
    assert await store.points(uid) == 1000 - 500
    assert result.coupon.expires_at_ms > store.clock.ms

    again = await store.catalog.confirm(uid, claim_id)
    assert again.ok and not again.new and again.coupon == result.coupon
    assert len(store.shopify.calls) == 1, "a claim already done never asks the shop again"
    assert [c.code for c in await store.catalog.coupons(uid)] == [code]


async def test_an_unlinked_member_gets_a_code_for_any_customer(store: Store) -> None:
    uid = await store.member(points=1000)
    result = await store.claim(uid, "tenpercent")
    assert result.ok and result.coupon is not None
    sent = store.shopify.discounts[result.coupon.code].input
    assert sent["context"] == {"all": "ALL"}
    assert sent["customerGets"]["value"] == {"percentage": 0.1}
    assert "minimumRequirement" not in sent and "endsAt" not in sent  # no minimum, no valid_days


async def test_without_a_shop_the_reward_is_not_offered(clean_redis: str, tmp_path: Path) -> None:
    rules = load_rules(write_rules(tmp_path))
    redis = connect(clean_redis)
    try:
        program = Program(redis, rules)
        catalog = Catalog(redis, program, rules)
        uid = new_user_id()
        await program.see(uid, "follow", Clock().ms)
        await program.adjust(uid, 1000, "test", "test", "seed")
        listed = {item.reward.id for item in await catalog.catalog(uid)}
        assert "online500" not in listed and "tenpercent" not in listed and "coffee" in listed
        offer = await catalog.show(uid, "online500")
        assert offer is not None and offer.refusal == cat.NOT_AVAILABLE
        assert (await catalog.confirm(uid, offer.claim_id)).reason == cat.NOT_AVAILABLE
        assert (await program.member(uid)).points == 1000  # type: ignore[union-attr]
    finally:
        await redis.aclose()


# ---- Shopify failing -------------------------------------------------------------------------------------------
async def test_shopify_failing_then_succeeding_within_the_retries(store: Store) -> None:
    uid = await store.member(points=1000)
    store.shopify.fail_next[:] = ["503", "timeout", "500"]  # three failures, the fourth (last) try succeeds
    result = await store.claim(uid)
    assert result.ok and result.coupon is not None
    assert made(store.shopify) == [result.coupon.code]
    assert await store.points(uid) == 500
    assert await store.entries(uid, "refund") == []


@pytest.mark.parametrize("failures", [["500"] * 4, ["timeout"] * 4])
async def test_shopify_failing_for_good_gives_the_points_back_once(store: Store, failures: list[str]) -> None:
    uid = await store.member(points=1000)
    store.shopify.fail_next[:] = failures
    claim_id = await store.offer(uid)
    result = await store.catalog.confirm(uid, claim_id)
    assert (result.ok, result.reason) == (False, SHOP_UNAVAILABLE)
    assert len(store.shopify.calls) == 4, "bounded: shopify_retry_attempts tries"
    assert made(store.shopify) == []
    assert await store.points(uid) == 1000
    refunds = await store.entries(uid, "refund")
    assert [e["delta"] for e in refunds] == [500]

    # tapped again, swept as stale, confirmed again: refused the same way, never refunded twice
    assert (await store.catalog.confirm(uid, claim_id)).reason == SHOP_UNAVAILABLE
    store.clock.advance(minutes=cat.STALE_MINUTES + 1)
    await store.catalog.release_stale()
    assert (await store.catalog.confirm(uid, claim_id)).reason == SHOP_UNAVAILABLE
    assert len(await store.entries(uid, "refund")) == 1 and await store.points(uid) == 1000
    assert len(store.shopify.calls) == 4
    stats = await store.program.stats()
    assert stats.get(f"claims_refused:{SHOP_UNAVAILABLE}") == 1, stats
    # and the member may claim again once the shop is back: the limit was given back too
    again = await store.claim(uid)
    assert again.ok and await store.points(uid) == 500


async def test_shopify_refusing_is_not_retried(store: Store, shopify: ShopifyAdminStandIn) -> None:
    wrong = ShopifyAdmin(shop_settings(shopify.url, token="shpat_wrong"))
    try:
        catalog = Catalog(store.redis, store.program, store.program.rules, clock=store.clock, shop=wrong)
        uid = await store.member(points=1000)
        offer = await catalog.show(uid, "online500")
        assert offer is not None
        result = await catalog.confirm(uid, offer.claim_id)
        assert result.reason == SHOP_UNAVAILABLE
        assert [c["status"] for c in shopify.calls] == [401]
        assert await store.points(uid) == 1000 and len(await store.entries(uid, "refund")) == 1
    finally:
        await wrong.close()


async def test_a_crash_after_the_refusal_still_gives_the_points_back(store: Store) -> None:
    uid = await store.member(points=1000)
    store.shopify.fail_next[:] = ["500"] * 4
    claim_id = await store.offer(uid)
    real_give_back = store.catalog._give_back

    async def crash(*args: object) -> None:
        raise Crash()
    store.catalog._give_back = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await store.catalog.confirm(uid, claim_id)
    store.catalog._give_back = real_give_back  # type: ignore[method-assign]
    assert await store.points(uid) == 500, "refused, the points not back yet"
    assert (await store.catalog.confirm(uid, claim_id)).reason == SHOP_UNAVAILABLE
    assert await store.points(uid) == 1000
    await store.catalog.confirm(uid, claim_id)
    assert len(await store.entries(uid, "refund")) == 1


# ---- a crash between Shopify's answer and our write ------------------------------------------------------------
class Crash(BaseException):
    """The process dying: nothing after it runs."""


@dataclass
class DiesAfterShopify:
    """Shopify makes the code, then the process dies before the claim is written."""

    real: ShopifyAdmin

    async def create_discount(self, discount: ShopDiscount) -> bool:
        await self.real.create_discount(discount)
        raise Crash()


async def test_a_crash_after_shopifys_answer_adopts_the_same_code(store: Store) -> None:
    uid = await store.member(points=1000, customer="8002")
    claim_id = await store.offer(uid)
    dying = Catalog(store.redis, store.program, store.program.rules, clock=store.clock,
                    shop=DiesAfterShopify(store.admin))
    with pytest.raises(Crash):
        await dying.confirm(uid, claim_id)
    assert made(store.shopify) == [discount_code(claim_id)]
    assert await store.points(uid) == 500 and await store.catalog.coupons(uid) == []

    result = await store.catalog.confirm(uid, claim_id)  # the event's re-run, or the member tapping again
    assert result.ok and result.coupon is not None and result.coupon.code == discount_code(claim_id)
    assert made(store.shopify) == [discount_code(claim_id)], "never two codes"
    assert store.shopify.calls[-1]["code"] == discount_code(claim_id)
    assert await store.points(uid) == 500 and await store.entries(uid, "refund") == []
    assert (await store.program.stats()).get("shop_discounts_adopted") == 1


async def test_a_crash_then_the_stale_sweep_completes_the_claim(store: Store) -> None:
    uid = await store.member(points=1000)
    claim_id = await store.offer(uid)
    dying = Catalog(store.redis, store.program, store.program.rules, clock=store.clock,
                    shop=DiesAfterShopify(store.admin))
    with pytest.raises(Crash):
        await dying.confirm(uid, claim_id)
    store.clock.advance(minutes=cat.STALE_MINUTES + 1)
    await store.catalog.release_stale()
    coupons = await store.catalog.coupons(uid)
    assert [c.code for c in coupons] == [discount_code(claim_id)] == made(store.shopify)
    assert await store.points(uid) == 500


async def test_an_answer_lost_after_shopify_made_the_code_is_adopted_on_the_retry(store: Store) -> None:
    uid = await store.member(points=1000)
    store.shopify.fail_next[:] = ["lost"]
    result = await store.claim(uid)
    assert result.ok and result.coupon is not None
    assert made(store.shopify) == [result.coupon.code]
    assert [c["status"] for c in store.shopify.calls] == [500, 200]


# ---- double taps -----------------------------------------------------------------------------------------------
async def test_double_taps_make_one_code(store: Store) -> None:
    uid = await store.member(points=1000)
    claim_id = await store.offer(uid)
    results = await asyncio.gather(*(store.catalog.confirm(uid, claim_id) for _ in range(10)))
    assert all(r.ok for r in results)
    assert {r.coupon.code for r in results if r.coupon} == {discount_code(claim_id)}
    assert made(store.shopify) == [discount_code(claim_id)]
    assert sum(r.new for r in results) == 1
    assert len(await store.entries(uid, "claim")) == 1 and await store.points(uid) == 500


# ---- Shopify's cost limits -------------------------------------------------------------------------------------
async def test_the_cost_bucket_is_respected(store: Store) -> None:
    store.shopify.maximum, store.shopify.restore_rate = 30.0, 200.0  # three calls, then 10 points every 50 ms
    store.shopify._available = 30.0
    uid = await store.member(points=5000)
    for _ in range(8):
        assert (await store.claim(uid, "tenpercent")).ok
    assert len(made(store.shopify)) == 8
    assert store.shopify.lowest >= 0
    assert not any(c.get("throttled") for c in store.shopify.calls), "the client waited instead of being throttled"
    assert store.admin.available() is not None


async def test_throttled_answers_are_waited_out(store: Store, shopify: ShopifyAdminStandIn) -> None:
    """Two processes share the store's bucket and know nothing of each other: THROTTLED, waited out, tried again."""
    shopify.maximum, shopify.restore_rate = 20.0, 200.0
    shopify._available = 20.0
    other = ShopifyAdmin(shop_settings(shopify.url))
    try:
        catalog = Catalog(store.redis, store.program, store.program.rules, clock=store.clock, shop=other)
        uid = await store.member(points=5000)
        claims = [await store.offer(uid, "tenpercent") for _ in range(6)]
        results = await asyncio.gather(*(
            (catalog if i % 2 else store.catalog).confirm(uid, claim_id) for i, claim_id in enumerate(claims)))
        assert all(r.ok for r in results), [r.reason for r in results]
        assert len(made(shopify)) == 6
        assert any(c.get("throttled") for c in shopify.calls), "the two processes did overrun the bucket"
        assert shopify.lowest >= 0
        assert await store.entries(uid, "refund") == []
    finally:
        await other.close()


async def test_the_stand_in_checks_the_request(shopify: ShopifyAdminStandIn) -> None:
    from aiohttp import ClientSession

    url = f"{shopify.url}/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
    headers = {"X-Shopify-Access-Token": TOKEN}
    mutation = ("mutation discountCodeBasicCreate($basicCodeDiscount: DiscountCodeBasicInput!) "
                "{ discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) { userErrors { code } } }")
    async with ClientSession() as http:
        async with http.post(url, json={"query": mutation, "variables": {}}) as r:
            assert r.status == 401
        async with http.post(url.replace(SHOPIFY_API_VERSION, "2019-01"), json={}, headers=headers) as r:
            assert r.status == 404
        bad = {"code": "X", "title": "t", "startsAt": "2026-01-01T00:00:00Z", "context": {"all": "ALL"},
               "customerGets": {"value": {"percentage": 10}, "items": {"all": True}}}  # percentage is 0..1
        async with http.post(url, json={"query": mutation, "variables": {"basicCodeDiscount": bad}},
                             headers=headers) as r:
            body = await r.json()
            assert body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE" and "extensions" in body
        missing = {k: v for k, v in bad.items() if k != "title"}
        async with http.post(url, json={"query": mutation, "variables": {"basicCodeDiscount": missing}},
                             headers=headers) as r:
            assert "title" in (await r.json())["errors"][0]["message"]
    assert shopify.discounts == {}


# ---- in chat ---------------------------------------------------------------------------------------------------
@pytest_asyncio.fixture
async def chat(bot_with: BotWith, tmp_path: Path, shopify: ShopifyAdminStandIn) -> Bot:
    return await bot_with(rewards_config=write_rules(tmp_path), shopify_shop=SHOP, shopify_admin_token=TOKEN,
                          shopify_api_base_url=shopify.url, shopify_retry_base_seconds=0.01,
                          shopify_timeout_seconds=0.5)


async def test_in_chat_a_code_like_any_coupon_and_a_kind_refusal(chat: Bot, shopify: ShopifyAdminStandIn) -> None:
    platform = chat.platform
    uid = new_user_id()
    await converse(platform, uid, platform.follow(uid))
    status, _ = await chat.admin("POST", f"/api/v1/members/{uid}/adjustments", {"points": 1000, "reason": "test"})
    assert status == 200
    listing = text_of(await converse(platform, uid, platform.text(uid, "特典")))
    assert "オンラインストア500円引き" in listing

    async def confirm() -> str:
        details = await converse(platform, uid, platform.postback(uid, pack(ShowReward("online500"))))
        data = re.search(r'"data": "(rw\.ok\|[^"]+)"', str(details).replace("'", '"'))
        assert data, details
        return text_of(await converse(platform, uid, platform.postback(uid, data.group(1))))

    said = await confirm()
    codes = made(shopify)
    assert len(codes) == 1 and codes[0] in said and "オンラインストアのお会計" in said, said
    assert "600 pt" in said

    shopify.fail_next[:] = ["503"] * 4
    refused = await confirm()
    assert "お戻ししました" in refused and "500 pt" in refused, refused
    status, member = await chat.admin("GET", f"/api/v1/members/{uid}")
    assert member["points"] == 600 and len(made(shopify)) == 1
    await chat.idle()


# ---- mistakes in the rules and the settings --------------------------------------------------------------------
@pytest.mark.parametrize("reward, where", [
    ('issue = "shopify_discount"\n', r"rewards\[\d+\]\.yen_off.*one of yen_off"),
    ('issue = "shopify_discount"\nyen_off = 500\npercent_off = 10\n', r"rewards\[\d+\]\.yen_off"),
    ('issue = "shopify_discount"\npercent_off = 150\n', r"rewards\[\d+\]\.percent_off.*1 to 100"),
    ('issue = "shopify_discount"\nyen_off = -5\n', r"rewards\[\d+\]\.yen_off"),
    ('issue = "shopify_discount"\nyen_off = 500\nminimum_order = "lots"\n', r"rewards\[\d+\]\.minimum_order"),
    ('issue = "generated"\nyen_off = 500\n', r"rewards\[\d+\]\.yen_off.*only a reward with issue"),
    ('issue = "shopify"\nyen_off = 500\n', r"rewards\[\d+\]\.issue"),
])
def test_rules_mistakes_are_named(tmp_path: Path, reward: str, where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(DEFAULT + f'\n[[rewards]]\nid = "bad"\ncost = 10\nname = {{ ja = "x" }}\n{reward}',
                    encoding="utf-8")
    with pytest.raises(RulesError, match=where):
        load_rules(path)


BASE_ENV = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.example"}


@pytest.mark.parametrize("env, message", [
    ({"SHOPIFY_SHOP": SHOP}, r"SHOPIFY_SHOP is set but SHOPIFY_ADMIN_TOKEN is not"),
    ({"SHOPIFY_ADMIN_TOKEN": TOKEN}, r"SHOPIFY_ADMIN_TOKEN is set but SHOPIFY_SHOP is not"),
    ({"SHOPIFY_SHOP": "https://shokai.example.com", "SHOPIFY_ADMIN_TOKEN": TOKEN}, r"myshopify domain"),
    ({"SHOPIFY_SHOP": SHOP, "SHOPIFY_ADMIN_TOKEN": "two words"}, r"SHOPIFY_ADMIN_TOKEN must be"),
    ({"SHOPIFY_SHOP": SHOP, "SHOPIFY_ADMIN_TOKEN": TOKEN, "SHOPIFY_API_BASE_URL": "ftp://x"}, r"SHOPIFY_API_BASE_URL"),
])
def test_settings_mistakes_stop_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE_ENV, **env})


def test_settings_both_or_neither() -> None:
    assert Settings.from_env(BASE_ENV).shopify_shop is None
    settings = Settings.from_env({**BASE_ENV, "SHOPIFY_SHOP": "Shokai-Test.myshopify.com", "SHOPIFY_ADMIN_TOKEN": TOKEN})
    assert settings.shopify_shop == SHOP and settings.shopify_api_base_url == f"https://{SHOP}"
