"""A stand-in for a Shopify store's webhooks (tests and `make run`): it builds order, refund and privacy bodies in
Shopify's documented shapes (the REST webhook payloads) and delivers them as Shopify does.

Delivery, as Shopify documents it: a JSON POST with X-Shopify-Topic, X-Shopify-Hmac-Sha256 (base64 HMAC-SHA256 of
the raw body, keyed with the app's secret), X-Shopify-Shop-Domain, X-Shopify-API-Version, X-Shopify-Webhook-Id
(the same on every retry of one webhook) and X-Shopify-Triggered-At (when the event happened, also the same on
retries). Anything but a 2xx within 5 seconds (1 to connect) is a failure, retried 8 times over about 4 hours
with an exponential backoff. The waits go through `sleep`, which tests replace so nothing waits for real.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

API_VERSION = "2025-10"  # as bot/config.py SHOPIFY_API_VERSION (the Admin API)
SHOP_DOMAIN = "shokai-dev.myshopify.com"
DEV_WEBHOOK_SECRET = "shpss_simulator_webhook_secret"  # the secret `make run` gives the bot and the stand-in
RETRIES = 8  # after the first attempt
FIRST_RETRY_SECONDS = 60.0  # doubling: 1, 2, 4 … 128 minutes, about 4 hours in all
CONNECT_SECONDS, TOTAL_SECONDS = 1.0, 5.0
_ids = itertools.count(820_982_911_946_154_508)  # Shopify's ids are large integers


def next_id() -> int:
    return next(_ids)


def sign(secret: str, raw: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def _money(yen: int) -> str:
    return f"{yen}.00"


def _set(yen: int, currency: str) -> dict:
    return {"shop_money": {"amount": _money(yen), "currency_code": currency},
            "presentment_money": {"amount": _money(yen), "currency_code": currency}}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def order_body(*, order_id: int | None = None, customer_id: int | None = None, items: list[tuple[str, int, int]]
               | None = None, shipping: int = 0, discount_codes: tuple[str, ...] = (), discount: int = 0,
               currency: str = "JPY", created_at: str | None = None, shipping_address: dict | None = None) -> dict:
    """An orders/paid body: `items` as (title, quantity, unit price in yen); the subtotal is what the lines cost
    less the order's discount, before shipping (tax included, as Japanese shops show prices)."""
    order_id = order_id or next_id()
    items = items or [("ギフトセット", 1, 5000)]
    lines = [{"id": next_id(), "title": title, "quantity": qty, "price": _money(price),
              "price_set": _set(price, currency), "sku": f"SKU-{i}", "taxable": True,
              "total_discount": "0.00", "product_id": next_id(), "variant_id": next_id()}
             for i, (title, qty, price) in enumerate(items)]
    gross = sum(qty * price for _, qty, price in items)
    subtotal = max(0, gross - discount)
    at = created_at or _now()
    customer = None if customer_id is None else {
        "id": customer_id, "email": f"customer{customer_id}@example.com", "first_name": "花子", "last_name": "山田",
        "state": "enabled", "verified_email": True, "currency": currency, "created_at": at, "updated_at": at}
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": f"#{order_id % 10000}",
        "order_number": order_id % 10000, "created_at": at, "processed_at": at, "updated_at": at,
        "currency": currency, "presentment_currency": currency, "financial_status": "paid",
        "total_line_items_price": _money(gross), "subtotal_price": _money(subtotal),
        "current_subtotal_price": _money(subtotal), "current_subtotal_price_set": _set(subtotal, currency),
        "total_discounts": _money(discount), "total_shipping_price_set": _set(shipping, currency),
        "total_price": _money(subtotal + shipping), "current_total_price": _money(subtotal + shipping),
        "total_tax": "0.00", "taxes_included": True, "test": False,
        "discount_codes": [{"code": code, "amount": _money(discount), "type": "fixed_amount"}
                           for code in discount_codes],
        "customer": customer, "line_items": lines, "refunds": [], "shipping_address": shipping_address,
        "shipping_lines": [{"id": next_id(), "title": "通常配送", "price": _money(shipping),
                            "price_set": _set(shipping, currency)}] if shipping else []}


def refund_body(order: dict, lines: list[tuple[int, int]], *, refund_id: int | None = None, shipping: int = 0,
                created_at: str | None = None) -> dict:
    """A refunds/create body for `order`: `lines` as (index of the order's line item, quantity refunded); the
    refunded shipping goes in a transaction and an order adjustment, as Shopify reports it."""
    currency = order["currency"]
    items = []
    for index, qty in lines:
        line = order["line_items"][index]
        subtotal = int(float(line["price"])) * qty
        items.append({"id": next_id(), "line_item_id": line["id"], "line_item": line, "quantity": qty,
                      "restock_type": "return", "location_id": None, "subtotal": float(subtotal),
                      "subtotal_set": _set(subtotal, currency), "total_tax": 0.0, "total_tax_set": _set(0, currency)})
    refund_id = refund_id or next_id()
    paid_back = sum(int(i["subtotal"]) for i in items) + shipping
    return {
        "id": refund_id, "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}", "order_id": order["id"],
        "created_at": created_at or _now(), "processed_at": created_at or _now(), "note": None, "restock": True,
        "user_id": None, "refund_line_items": items, "duties": [],
        "order_adjustments": [{"id": next_id(), "order_id": order["id"], "refund_id": refund_id,
                               "kind": "shipping_refund", "reason": "Shipping refund", "amount": _money(-shipping),
                               "tax_amount": "0.00"}] if shipping else [],
        "transactions": [{"id": next_id(), "order_id": order["id"], "kind": "refund", "status": "success",
                          "amount": _money(paid_back), "currency": currency, "gateway": "shopify_payments"}]}


def data_request_body(customer_id: int, orders: list[int], shop: str = SHOP_DOMAIN) -> dict:
    return {"shop_id": 954_889, "shop_domain": shop, "orders_requested": orders,
            "customer": {"id": customer_id, "email": f"customer{customer_id}@example.com", "phone": "090-0000-0000"},
            "data_request": {"id": next_id()}}


def customer_redact_body(customer_id: int, orders: list[int], shop: str = SHOP_DOMAIN) -> dict:
    return {"shop_id": 954_889, "shop_domain": shop,
            "customer": {"id": customer_id, "email": f"customer{customer_id}@example.com", "phone": "090-0000-0000"},
            "orders_to_redact": orders}


def shop_redact_body(shop: str = SHOP_DOMAIN) -> dict:
    return {"shop_id": 954_889, "shop_domain": shop}


@dataclass
class Delivery:
    topic: str
    webhook_id: str
    raw: bytes
    headers: dict[str, str]
    answers: list[int | str] = field(default_factory=list)  # status per attempt, or "timeout" / "unreachable"
    waits: list[float] = field(default_factory=list)  # the backoff before each retry

    @property
    def delivered(self) -> bool:
        return any(isinstance(a, int) and 200 <= a < 300 for a in self.answers)


class ShopifyStandIn:
    """Sends webhooks to `url` (the bot's /webhooks/shopify) as the store `shop` does."""

    def __init__(self, url: str, secret: str = DEV_WEBHOOK_SECRET, shop: str = SHOP_DOMAIN,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, total_seconds: float = TOTAL_SECONDS):
        self.url = url
        self.secret = secret
        self.shop = shop
        self.sleep = sleep
        self.timeout = aiohttp.ClientTimeout(total=total_seconds, connect=min(CONNECT_SECONDS, total_seconds))
        self.deliveries: list[Delivery] = []

    def webhook(self, topic: str, body: dict, webhook_id: str | None = None, triggered_at: str | None = None,
                secret: str | None = None) -> Delivery:
        """The request Shopify would make (signed with `secret`, by default the store's)."""
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        webhook_id = webhook_id or str(uuid.uuid4())
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
                   "X-Shopify-Hmac-Sha256": sign(self.secret if secret is None else secret, raw),
                   "X-Shopify-Shop-Domain": self.shop, "X-Shopify-API-Version": API_VERSION,
                   "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Triggered-At": triggered_at or _now(),
                   "X-Shopify-Event-Id": str(uuid.uuid4()), "User-Agent": "Shopify-Captain-Hook"}
        return Delivery(topic, webhook_id, raw, headers)

    async def attempt(self, delivery: Delivery) -> int | str:
        """One POST of the delivery; its answer is recorded."""
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as http, \
                    http.post(self.url, data=delivery.raw, headers=delivery.headers) as response:
                await response.read()
                answer: int | str = response.status
        except TimeoutError:
            answer = "timeout"
        except aiohttp.ClientError:
            answer = "unreachable"
        delivery.answers.append(answer)
        return answer

    async def deliver(self, delivery: Delivery, retries: int = RETRIES) -> Delivery:
        """The first attempt, then retries with the same webhook id and body until a 2xx, as Shopify does."""
        self.deliveries.append(delivery)
        wait = FIRST_RETRY_SECONDS
        for attempt in range(retries + 1):
            if attempt:
                delivery.waits.append(wait)
                await self.sleep(wait)
                wait *= 2
            if delivery.delivered or (isinstance(answer := await self.attempt(delivery), int)
                                      and 200 <= answer < 300):
                break
        return delivery

    async def send(self, topic: str, body: dict, retries: int = RETRIES, **kwargs: Any) -> Delivery:
        return await self.deliver(self.webhook(topic, body, **kwargs), retries)
