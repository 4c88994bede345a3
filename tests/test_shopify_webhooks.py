"""Shopify's webhooks through the stand-in (linesim/shopify.py), signed as Shopify signs them: orders/paid as a
purchase (by the linked customer, by the friend's welcome coupon, kept while unlinked), refunds/create in
proportion (partial, then the rest; before its order), the privacy topics, redelivery, wrong signatures, other
currencies and topics, and a worker dying mid-webhook."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from bot.infra import keys as infra_keys
from bot.infra.metrics import Metrics
from bot.intake.worker import Worker
from handlers import build_router
from linesim import shopify as store
from linesim.platform import new_user_id, text_of
from linesim.shopify import ShopifyStandIn
from rewards import keys
from tests.support.harness import Bot, BotWith, converse, make_settings, start_bot
from tests.support.rules_helpers import variant
from tests.test_account_link import SHOP, link, member, stats
from tests.test_admin_api import refer

SECRET = "shpss_test_secret_0123456789abcdef"
NO_QUIET = {"notifications__quiet_hours": '""'}  # the referrer's push goes out at once, whatever the hour
COUPON = """
[referral.friend_coupon]
kind = "generated"
yen_off = 500
prefix = "WELCOME-"
"""


async def no_wait(seconds: float) -> None:
    """The stand-in's backoff, without waiting for real (the waits are recorded on the delivery)."""


@pytest.fixture
async def bot(bot_with: BotWith, tmp_path: Path) -> Bot:
    return await bot_with(shopify_webhook_secret=SECRET, shop_link_url=SHOP, rewards_config=variant(tmp_path,
                                                                                                     **NO_QUIET))


def stand_in(bot: Bot, **kwargs: object) -> ShopifyStandIn:
    return ShopifyStandIn(bot.url + "/webhooks/shopify", SECRET, sleep=no_wait, **kwargs)  # type: ignore[arg-type]


async def send(bot: Bot, topic: str, body: dict, **kwargs: object) -> store.Delivery:
    delivery = await stand_in(bot).send(topic, body, **kwargs)
    await bot.idle()
    return delivery


async def queued(bot: Bot) -> int:
    redis, settings = bot.services.redis, bot.services.settings
    return sum([await redis.xlen(infra_keys.stream(p)) for p in range(settings.stream_partitions)])


async def friend(bot: Bot) -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid))
    return uid


def pushes_to(bot: Bot, uid: str, since: int) -> str:
    return text_of([m for c in bot.platform.calls[since:] if c.endpoint == "push" and c.status == 200
                    and uid in c.to for m in c.body.get("messages", [])])


def order(customer_id: int | None = None, yen: int = 5000, **kwargs: object) -> dict:
    """An order of two lines (yen/2 each, one of each) plus shipping, which never earns."""
    half = yen // 2
    return store.order_body(customer_id=customer_id, items=[("ギフト", 1, half), ("お茶", 1, yen - half)],
                            shipping=800, **kwargs)  # type: ignore[arg-type]


# ---- signatures, redelivery, other topics -------------------------------------------------------------------
BODIES = {
    "orders/paid": lambda: order(customer_id=1),
    "refunds/create": lambda: store.refund_body(order(customer_id=1), [(0, 1)]),
    "customers/data_request": lambda: store.data_request_body(1, []),
    "customers/redact": lambda: store.customer_redact_body(1, []),
    "shop/redact": lambda: store.shop_redact_body(),
    "products/update": lambda: {"id": 1, "title": "x"},
}


@pytest.mark.parametrize("topic", list(BODIES))
async def test_every_topic_signed_wrongly_or_not_at_all_is_401_and_stores_nothing(bot: Bot, topic: str) -> None:
    shop = stand_in(bot)
    for wrong in (shop.webhook(topic, BODIES[topic](), secret="not-the-secret"),
                  shop.webhook(topic, BODIES[topic]())):
        if "not-the-secret" not in str(wrong):  # the second: no signature header at all
            del wrong.headers["X-Shopify-Hmac-Sha256"]
        assert await shop.attempt(wrong) == 401
    # the body changed after signing (one byte) is refused too
    tampered = shop.webhook(topic, BODIES[topic]())
    tampered.raw = tampered.raw.replace(b"}", b" }", 1)
    assert await shop.attempt(tampered) == 401
    assert await queued(bot) == 0
    assert not any(k.startswith("shopify") for k in await stats(bot))
    # signed, it is taken
    assert (await send(bot, topic, BODIES[topic]())).answers == [200]


async def test_without_the_secret_the_endpoint_is_404(bot_with: BotWith) -> None:
    bot = await bot_with()
    delivery = await stand_in(bot).send("orders/paid", order(customer_id=1), retries=0)
    assert delivery.answers == [404]


async def test_a_signed_body_without_what_shopify_always_sends_is_400_and_stores_nothing(bot: Bot) -> None:
    shop = stand_in(bot)
    body = order(customer_id=1)
    body["id"] = "gid://shopify/Order/1"
    assert await shop.attempt(shop.webhook("orders/paid", body)) == 400
    headerless = shop.webhook("orders/paid", order(customer_id=1))
    del headerless.headers["X-Shopify-Webhook-Id"]
    assert await shop.attempt(headerless) == 400
    assert await queued(bot) == 0


async def test_an_unknown_topic_is_200_and_counted(bot: Bot) -> None:
    assert (await send(bot, "products/update", {"id": 1})).answers == [200]
    assert (await send(bot, "orders/create", order(customer_id=1))).answers == [200]
    assert (await stats(bot))["shopify_topics_unknown"] == 2
    assert await queued(bot) == 0


async def test_the_same_webhook_id_again_changes_nothing(bot: Bot) -> None:
    uid = await friend(bot)
    await link(bot, uid, "5001")
    shop = stand_in(bot)
    paid = shop.webhook("orders/paid", order(customer_id=5001, yen=5000))
    assert (await shop.deliver(paid)).answers == [200]
    await bot.idle()
    again = store.Delivery(paid.topic, paid.webhook_id, paid.raw, paid.headers)
    assert (await shop.deliver(again)).answers == [200]
    await bot.idle()
    assert (await member(bot, uid))["points"] == 100 + 50
    assert (await stats(bot))["shopify_orders"] == 1
    # a re-send of the same order under a new webhook id (or after the conversions API) awards nothing more
    await send(bot, "orders/paid", __import__("json").loads(paid.raw))
    assert (await member(bot, uid))["points"] == 150


async def test_an_order_in_another_currency_is_refused_counted_and_stores_nothing(bot: Bot) -> None:
    uid = await friend(bot)
    await link(bot, uid, "5002")
    body = order(customer_id=5002, currency="USD")
    assert (await send(bot, "orders/paid", body)).answers == [200]  # taken (Shopify must not retry), refused
    assert (await member(bot, uid))["points"] == 100
    assert (await stats(bot))["shopify_orders_refused_currency"] == 1
    assert await bot.services.redis.get(keys.order_owner(str(body["id"]))) is None
    mixed = order(customer_id=5002)
    mixed["presentment_currency"] = "EUR"
    await send(bot, "orders/paid", mixed)
    assert (await member(bot, uid))["points"] == 100
    assert (await stats(bot))["shopify_orders_refused_currency"] == 2


# ---- orders/paid: who bought -------------------------------------------------------------------------------
async def test_a_linked_customers_order_pays_the_member_and_completes_the_referral_with_the_referrers_push(
        bot: Bot) -> None:
    referrer, buyer = new_user_id(), new_user_id()
    await refer(bot, referrer, buyer)
    await link(bot, buyer, "6001")
    mark = len(bot.platform.calls)
    body = order(customer_id=6001, yen=5000)
    assert (await send(bot, "orders/paid", body)).answers == [200]
    await bot.platform.wait_for(lambda: pushes_to(bot, referrer, mark), 10)
    told = pushes_to(bot, referrer, mark)
    assert "500" in told  # the referrer's points, in their push
    bought = await member(bot, buyer)
    assert bought["points"] == 100 + 50 + 300  # signup, 1 point per ¥100 of the subtotal (not shipping), friend
    assert (await member(bot, referrer))["points"] == 100 + 500
    assert (await member(bot, referrer))["referrals"]["completed"] == 1


async def test_an_order_with_the_friends_welcome_coupon_is_theirs(bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(shopify_webhook_secret=SECRET, shop_link_url=SHOP,
                         rewards_config=variant(tmp_path, COUPON, **NO_QUIET))
    referrer, buyer = new_user_id(), new_user_id()
    await refer(bot, referrer, buyer)
    code = (await member(bot, buyer))["friend_coupon"]["code"]
    mark = len(bot.platform.calls)
    # a customer the bot never saw linked, paying with the friend's code (as it is typed: lower case)
    await send(bot, "orders/paid", order(customer_id=7777, yen=3000, discount_codes=(code.lower(),), discount=500))
    await bot.platform.wait_for(lambda: pushes_to(bot, referrer, mark), 10)
    assert (await member(bot, buyer))["points"] == 100 + 25 + 300  # ¥2,500 after the coupon's ¥500
    assert (await member(bot, referrer))["referrals"]["completed"] == 1


async def test_an_unlinked_customers_order_is_kept_and_credited_once_when_they_link(bot: Bot) -> None:
    uid = await friend(bot)
    body = order(customer_id=8001, yen=4000)
    await send(bot, "orders/paid", body)
    assert (await stats(bot))["orders_unattributed"] == 1
    assert (await member(bot, uid))["points"] == 100
    await link(bot, uid, "8001")
    assert (await member(bot, uid))["points"] == 140
    await send(bot, "orders/paid", body)  # Shopify re-sends it: nothing more
    assert (await member(bot, uid))["points"] == 140


async def test_an_order_naming_nobody_is_counted_and_not_kept(bot: Bot) -> None:
    await send(bot, "orders/paid", order(customer_id=None))
    assert (await stats(bot))["shopify_orders_unmatched"] == 1


# ---- refunds/create ---------------------------------------------------------------------------------------
async def test_a_partial_refund_reverses_in_proportion_then_a_full_one_the_rest_and_voids_the_referral(
        bot: Bot) -> None:
    referrer, buyer = new_user_id(), new_user_id()
    await refer(bot, referrer, buyer)
    await link(bot, buyer, "9001")
    body = order(customer_id=9001, yen=5000)  # two lines of ¥2,500: 50 purchase points
    await send(bot, "orders/paid", body)
    assert (await member(bot, buyer))["points"] == 100 + 50 + 300
    first = store.refund_body(body, [(0, 1)], shipping=800)  # one line and the shipping back
    await send(bot, "refunds/create", first)
    assert (await member(bot, buyer))["points"] == 100 + 25 + 300  # half the purchase points; shipping earned none
    assert (await member(bot, referrer))["referrals"]["completed"] == 1  # ¥2,500 left still qualifies (any amount)
    await send(bot, "refunds/create", first)  # the same refund (a new webhook id): nothing more
    assert (await member(bot, buyer))["points"] == 425
    await send(bot, "refunds/create", store.refund_body(body, [(1, 1)]))  # the rest: all of it
    assert (await member(bot, buyer))["points"] == 100
    assert (await member(bot, referrer))["points"] == 100  # the referrer's 500 taken back
    assert (await member(bot, referrer))["referrals"]["completed"] == 0
    ledger = await bot.services.program.ledger(buyer)
    refunds = [e for e in ledger if e["kind"] == "refund"]
    assert sorted(-e["delta"] for e in refunds) == [25, 25, 300]


async def test_partial_refunds_round_down_and_the_apis_full_refund_takes_the_rest(bot: Bot) -> None:
    uid = await friend(bot)
    await link(bot, uid, "9051")
    body = store.order_body(customer_id=9051, items=[("a", 1, 500), ("b", 1, 499)])  # ¥999: 9 points
    await send(bot, "orders/paid", body)
    assert (await member(bot, uid))["points"] == 109
    await send(bot, "refunds/create", store.refund_body(body, [(0, 1)]))  # ¥500 of ¥999: 4.5 → 4 back
    assert (await member(bot, uid))["points"] == 105
    status, answer = await bot.admin("POST", f"/api/v1/conversions/{body['id']}/refund")
    assert status == 200 and answer["points_reversed"] == 5  # type: ignore[index]
    assert (await member(bot, uid))["points"] == 100
    await send(bot, "refunds/create", store.refund_body(body, [(1, 1)]))  # Shopify's own refund of the rest
    assert (await member(bot, uid))["points"] == 100


async def test_a_partial_refund_voids_the_referral_only_when_what_is_left_no_longer_qualifies(
        bot_with: BotWith, tmp_path: Path) -> None:
    bot = await bot_with(shopify_webhook_secret=SECRET, shop_link_url=SHOP,
                         rewards_config=variant(tmp_path, referral__minimum_order=3000, **NO_QUIET))
    referrer, buyer = new_user_id(), new_user_id()
    await refer(bot, referrer, buyer)
    await link(bot, buyer, "9101")
    body = store.order_body(customer_id=9101, items=[("a", 1, 1000), ("b", 1, 1000), ("c", 1, 4000)])
    await send(bot, "orders/paid", body)
    assert (await member(bot, referrer))["referrals"]["completed"] == 1
    await send(bot, "refunds/create", store.refund_body(body, [(0, 1)]))  # ¥5,000 left: still qualifies
    assert (await member(bot, referrer))["referrals"]["completed"] == 1
    assert (await member(bot, buyer))["points"] == 100 + 60 - 10 + 300
    await send(bot, "refunds/create", store.refund_body(body, [(2, 1)]))  # ¥1,000 left: under ¥3,000
    assert (await member(bot, referrer))["referrals"]["completed"] == 0
    assert (await member(bot, referrer))["points"] == 100
    assert (await member(bot, buyer))["points"] == 100 + 10  # the friend's 300 back; ¥1,000's points stay
    assert (await stats(bot))["referrals_voided_by_refund"] == 1


async def test_a_refund_before_its_order_is_kept_and_applied_when_the_order_comes(bot: Bot) -> None:
    uid = await friend(bot)
    await link(bot, uid, "9201")
    body = order(customer_id=9201, yen=6000)
    refund = store.refund_body(body, [(0, 1)])  # ¥3,000 of ¥6,000
    await send(bot, "refunds/create", refund)
    assert (await stats(bot))["shopify_refunds_early"] == 1
    assert (await member(bot, uid))["points"] == 100
    await send(bot, "orders/paid", body)
    assert (await member(bot, uid))["points"] == 100 + 60 - 30
    await send(bot, "refunds/create", refund)  # Shopify sends it once more: nothing more
    assert (await member(bot, uid))["points"] == 130


async def test_a_whole_refund_before_its_order_tells_the_referrer_nothing(bot: Bot) -> None:
    referrer, buyer = new_user_id(), new_user_id()
    await refer(bot, referrer, buyer)
    await link(bot, buyer, "9301")
    body = order(customer_id=9301, yen=2000)
    await send(bot, "refunds/create", store.refund_body(body, [(0, 1), (1, 1)]))
    mark = len(bot.platform.calls)
    await send(bot, "orders/paid", body)
    await asyncio.sleep(0.2)  # a push, had there been one, is on its way by now
    assert pushes_to(bot, referrer, mark) == ""
    assert (await member(bot, buyer))["points"] == 100
    assert (await member(bot, referrer))["points"] == 100


async def test_a_refund_of_an_order_kept_unlinked_credits_only_what_is_left(bot: Bot) -> None:
    uid = await friend(bot)
    body = order(customer_id=9401, yen=4000)
    await send(bot, "orders/paid", body)
    await send(bot, "refunds/create", store.refund_body(body, [(0, 1)]))
    await link(bot, uid, "9401")
    assert (await member(bot, uid))["points"] == 100 + 20
    whole = order(customer_id=9402, yen=4000)
    await send(bot, "orders/paid", whole)
    await send(bot, "refunds/create", store.refund_body(whole, [(0, 1), (1, 1)]))
    other = await friend(bot)
    await link(bot, other, "9402")
    assert (await member(bot, other))["points"] == 100  # dropped: nothing to credit


# ---- privacy ------------------------------------------------------------------------------------------------
async def test_a_data_request_is_kept_for_staff_with_what_we_hold(bot: Bot) -> None:
    uid = await friend(bot)
    await link(bot, uid, "9501")
    body = order(customer_id=9501, yen=1000)
    await send(bot, "orders/paid", body)
    await send(bot, "customers/data_request", store.data_request_body(9501, [body["id"]]))
    status, answer = await bot.admin("GET", "/api/v1/shopify/data-requests")
    assert status == 200 and isinstance(answer, dict)
    [request] = answer["requests"]
    assert request["customer_id"] == "9501" and request["data"]["line_user_id"] == uid
    assert request["data"]["orders_reported"] == [str(body["id"])]
    assert (await stats(bot))["shopify_data_requests"] == 1


async def test_a_customers_redaction_erases_the_linked_member_and_drops_their_kept_orders(bot: Bot) -> None:
    uid = await friend(bot)
    await link(bot, uid, "9601")
    await send(bot, "orders/paid", order(customer_id=9601, yen=1000))
    kept = order(customer_id=9602, yen=1000)
    await send(bot, "orders/paid", kept)
    await send(bot, "customers/data_request", store.data_request_body(9601, []))
    await send(bot, "customers/redact", store.customer_redact_body(9601, []))
    await send(bot, "customers/redact", store.customer_redact_body(9602, [kept["id"]]))
    # the linked member is erased as on their own request (tests/test_privacy.py): both ids answer 404
    assert (await bot.admin("GET", f"/api/v1/members/{uid}"))[0] == 404
    assert (await bot.admin("GET", "/api/v1/customers/9601"))[0] == 404
    redis = bot.services.redis
    assert not await redis.exists(keys.customer("9601"), ) and not await redis.exists(keys.customer_orders("9602"))
    assert (await redis.get(keys.order_owner(str(kept["id"])))).decode() == "x:9602"
    _, answer = await bot.admin("GET", "/api/v1/shopify/data-requests")
    assert answer == {"requests": []}  # type: ignore[comparison-overlap]
    # the customer links again later: a new link, nothing of the old one
    other = await friend(bot)
    await link(bot, other, "9602")
    assert (await member(bot, other))["points"] == 100


async def test_a_shops_redaction_forgets_every_customer(bot: Bot) -> None:
    a, b = await friend(bot), await friend(bot)
    await link(bot, a, "9701")
    await link(bot, b, "9702")
    await send(bot, "orders/paid", order(customer_id=9703, yen=1000))
    await send(bot, "shop/redact", store.shop_redact_body())
    assert (await member(bot, a))["customer_id"] is None and (await member(bot, b))["customer_id"] is None
    assert (await stats(bot))["shopify_shops_redacted"] == 1
    assert not await bot.services.redis.exists(keys.customer_orders("9703"))


# ---- delivery: retries and crashes --------------------------------------------------------------------------
async def test_the_stand_in_retries_a_failing_or_slow_bot_with_the_same_webhook_id(bot: Bot) -> None:
    """In front of the bot, a proxy that fails the first attempt (503) and stalls the second past Shopify's
    timeout: the third reaches the bot, which handles the webhook once."""
    uid = await friend(bot)
    await link(bot, uid, "9801")
    seen: list[str] = []
    release = asyncio.Event()

    async def flaky(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers["X-Shopify-Webhook-Id"])
        if len(seen) == 1:
            return web.Response(status=503)
        if len(seen) == 2:
            await release.wait()  # never answers before the stand-in gives up
            return web.Response(status=200)
        async with bot.http.post(bot.url + "/webhooks/shopify", data=await request.read(),
                                 headers=request.headers) as forwarded:
            return web.Response(status=forwarded.status)

    app = web.Application()
    app.router.add_post("/webhooks/shopify", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        shop = ShopifyStandIn(f"http://127.0.0.1:{port}/webhooks/shopify", SECRET, sleep=no_wait, total_seconds=0.5)
        delivery = await shop.send("orders/paid", order(customer_id=9801, yen=2000))
        release.set()
    finally:
        await runner.cleanup()
    assert delivery.answers == [503, "timeout", 200]
    assert delivery.waits == [60.0, 120.0]  # Shopify's backoff, doubling
    assert len(set(seen)) == 1
    await bot.idle()
    assert (await member(bot, uid))["points"] == 120


async def test_redis_down_answers_503_so_shopify_retries(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from bot.app import INTAKE

    async def down(*args: object, **kwargs: object) -> object:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(bot.app[INTAKE], "_script", down)  # the intake's one Redis call: intake.lua
    delivery = await stand_in(bot).send("orders/paid", order(customer_id=1), retries=1)
    monkeypatch.undo()
    assert delivery.answers == [503, 503]
    assert await stand_in(bot).attempt(store.Delivery(delivery.topic, delivery.webhook_id, delivery.raw,
                                                      delivery.headers)) == 200  # Shopify's next retry


async def test_a_worker_dying_mid_webhook_loses_and_duplicates_nothing(clean_redis: str, platform: object) -> None:
    bot = await start_bot(make_settings(clean_redis, platform, lease_ms=600, shopify_webhook_secret=SECRET,  # type: ignore[arg-type]
                                        shop_link_url=SHOP), platform, run_worker=True)  # type: ignore[arg-type]
    try:
        referrer, buyer = new_user_id(), new_user_id()
        await refer(bot, referrer, buyer)
        await link(bot, buyer, "9901")
        from bot.app import WORKER
        await bot.app[WORKER].stop()  # the app's own worker steps aside; ours below die and take over
        await asyncio.sleep(0)
        services = bot.services
        shopify = services.program.shopify
        inside, never = asyncio.Event(), asyncio.Event()
        real_refund = shopify.orders.record_purchase

        async def dying(*args: object, **kwargs: object) -> object:
            answer = await real_refund(*args, **kwargs)  # the points land…
            inside.set()
            await never.wait()  # …and the process dies before the push and the ack
            return answer

        shopify.orders.record_purchase = dying  # type: ignore[method-assign]
        first = Worker(services, build_router(), Metrics(), name="first")
        task = asyncio.create_task(first.run())
        body = order(customer_id=9901, yen=5000)
        assert (await stand_in(bot).send("orders/paid", body)).answers == [200]
        await asyncio.wait_for(inside.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        shopify.orders.record_purchase = real_refund  # type: ignore[method-assign]
        assert (await member(bot, buyer))["points"] == 450

        mark = len(platform.calls)  # type: ignore[attr-defined]
        second = Worker(services, build_router(), Metrics(), name="second")
        task = asyncio.create_task(second.run())
        try:
            await bot.idle()
            await platform.wait_for(lambda: pushes_to(bot, referrer, mark), 10)  # type: ignore[attr-defined]
        finally:
            await second.stop()
            await asyncio.wait_for(task, 10)
        assert (await member(bot, buyer))["points"] == 450
        assert (await member(bot, referrer))["points"] == 600
        assert second.handled == 1
    finally:
        await bot.stop()


# ---- the simulator console's store path ---------------------------------------------------------------------
async def test_the_console_reports_a_shopify_order_by_customer_id_or_coupon(bot_with: BotWith, tmp_path: Path) -> None:
    from linesim.console import Console, ConsoleError

    bot = await bot_with(shopify_webhook_secret=SECRET, shop_link_url=SHOP,
                         rewards_config=variant(tmp_path, COUPON, **NO_QUIET))
    console = Console(bot.platform, bot_url=bot.url, public_base_url=bot.url, admin_token="x", shopify_secret=SECRET)
    hanako = console.add_customer("花子", "ja")
    await converse(bot.platform, hanako.uid, bot.platform.follow(hanako.uid))
    await link(bot, hanako.uid, "424242")
    answer = await console.shopify_order(hanako, 3000, "424242")
    assert answer["answers"] == [200]
    await bot.idle()
    assert (await member(bot, hanako.uid))["points"] == 130
    # a referred friend's coupon on an order with no customer id
    referrer, friend_uid = new_user_id(), new_user_id()
    await refer(bot, referrer, friend_uid)
    code = (await member(bot, friend_uid))["friend_coupon"]["code"]
    answer = await console.shopify_order(hanako, 2000, None, code)
    await bot.idle()
    assert (await member(bot, friend_uid))["points"] == 100 + 20 + 300
    with pytest.raises(ConsoleError):
        await console.shopify_order(hanako, 2000, "not-a-number")
    without = Console(bot.platform, bot_url=bot.url, public_base_url=bot.url, admin_token="x")
    with pytest.raises(ConsoleError):
        await without.shopify_order(hanako, 2000, "1")


def test_the_secret_is_read_from_the_environment_and_blank_means_unset() -> None:
    from bot.config import Settings
    from tests.test_startup import GOOD_ENV

    assert Settings.from_env({**GOOD_ENV, "SHOPIFY_WEBHOOK_SECRET": f" {SECRET} "}).shopify_webhook_secret == SECRET
    assert Settings.from_env({**GOOD_ENV, "SHOPIFY_WEBHOOK_SECRET": " "}).shopify_webhook_secret is None
    assert Settings.from_env(GOOD_ENV).shopify_webhook_secret is None


async def test_a_body_over_one_mib_is_413_as_for_lines_webhook(bot: Bot) -> None:
    body = order(customer_id=1)
    body["note"] = "x" * (1024 * 1024)
    shop = stand_in(bot)
    assert await shop.attempt(shop.webhook("orders/paid", body)) == 413
    assert await queued(bot) == 0


async def test_a_shopify_refund_that_voids_the_referral_tells_the_shops_webhooks_once(bot_with: BotWith,
                                                                                    tmp_path: Path) -> None:
    """The voided referral reaches the shop's outbound webhooks from a Shopify refund as from the API's refund,
    once, though Shopify sends the refund twice."""
    import json

    from bot.app import SENDER
    from tests.support.receivers import receiver

    bot = await bot_with(shopify_webhook_secret=SECRET, shop_link_url=SHOP, delivery_poll_seconds=3600,
                         rewards_config=variant(tmp_path, **NO_QUIET))
    referrer, buyer = new_user_id(), new_user_id()
    async with receiver() as hooks:
        status, _ = await bot.admin("POST", "/api/v1/webhooks", {"url": hooks.url, "events": ["referral.voided"]})
        assert status == 201
        await refer(bot, referrer, buyer)
        await link(bot, buyer, "9002")
        body = order(customer_id=9002, yen=5000)
        await send(bot, "orders/paid", body)
        whole = store.refund_body(body, [(0, 1), (1, 1)])
        await send(bot, "refunds/create", whole)
        await send(bot, "refunds/create", whole)  # Shopify again, under a new webhook id
        while await bot.app[SENDER].tick():
            pass
    voided = [json.loads(r.body) for r in hooks.got]
    assert [v["type"] for v in voided] == ["referral.voided"]
    assert voided[0]["data"] == {"referrer_user_id": referrer, "friend_user_id": buyer}
