"""Shopify's webhook topics: what each body says (read at intake, so only what we use is queued) and what the
worker does with it (through rewards/shopify.py).

Every topic's webhooks share a lane (the worker handles a lane's entries one at a time, by X-Shopify-Triggered-At):
an order's paid and refunds go in the order's lane, a customer's privacy requests in the customer's.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from bot import notices
from bot.services import Services
from rewards.ring_watch import mark_of
from rewards.shopify import PaidOrder

log = logging.getLogger(__name__)

KIND = "shopify"  # an intake entry's "type" for a Shopify webhook (LINE's events have their own types)
ORDER_TOPICS = ("orders/paid", "refunds/create")
PRIVACY_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")
TOPICS = ORDER_TOPICS + PRIVACY_TOPICS
CURRENCY = "JPY"  # rules' points are per yen
MAX_ID = 64  # Shopify's ids are 64-bit integers; a gid or a long string is refused


class Malformed(ValueError):
    """A signed body that does not have the shape Shopify documents for its topic."""


def _id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isascii() \
            or not str(value).isalnum() or not 0 < len(str(value)) <= MAX_ID:
        raise Malformed(f"{what} must be Shopify's numeric id, got {str(value)[:40]!r}")
    return str(value)


def _yen(value: Any, what: str) -> int:
    """A decimal string (or number) of yen as whole yen: JPY has no minor unit, so '1200.00' is 1200 (any
    fraction, which JPY never has, is dropped)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise Malformed(f"{what} is not a decimal amount: {str(value)[:40]!r}") from exc
    if not amount.is_finite() or amount < 0 or amount > 10**9:
        raise Malformed(f"{what} is out of range: {str(value)[:40]!r}")
    return int(amount.to_integral_value(rounding=ROUND_DOWN))


def time_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def _customer(body: dict) -> str | None:
    customer = body.get("customer")
    if isinstance(customer, dict) and customer.get("id") is not None:
        return _id(customer["id"], "customer.id")
    return None


def _address_mark(body: dict) -> str | None:
    """The delivery address as a hashed ring mark (rewards/ring_watch.py): only the hash is queued and kept."""
    address = body.get("shipping_address")
    if not isinstance(address, dict):
        return None
    parts = [str(address.get(k) or "") for k in ("country_code", "zip", "province", "city", "address1", "address2")]
    plain = "|".join("".join(p.split()).lower() for p in parts)
    return mark_of("addr", plain) if plain.strip("|") else None


def read(topic: str, body: Any, shop: str) -> tuple[str, dict[str, Any]] | None:
    """(lane, the facts to queue) for a topic we handle; None for any other topic. Malformed when the body lacks
    what Shopify always sends for the topic."""
    if topic not in TOPICS:
        return None
    if not isinstance(body, dict):
        raise Malformed("the body is not a JSON object")
    if topic == "orders/paid":
        order_id = _id(body.get("id"), "id")
        codes = [d.get("code") for d in body.get("discount_codes") or [] if isinstance(d, dict)]
        return f"shopify:o:{order_id}", {
            "order_id": order_id, "customer_id": _customer(body),
            "amount": _yen(body.get("current_subtotal_price", body.get("subtotal_price")), "current_subtotal_price"),
            "currency": str(body.get("currency") or ""), "presentment_currency": str(body.get("presentment_currency")
                                                                                    or body.get("currency") or ""),
            "codes": [c[:100] for c in codes if isinstance(c, str) and c][:20], "address": _address_mark(body),
            "at": time_ms(body.get("processed_at")) or time_ms(body.get("created_at"))}
    if topic == "refunds/create":
        order_id = _id(body.get("order_id"), "order_id")
        yen, currencies = 0, set()
        for item in body.get("refund_line_items") or []:
            if not isinstance(item, dict):
                raise Malformed("refund_line_items holds something that is not an object")
            money = ((item.get("subtotal_set") or {}).get("shop_money") or {})
            if money.get("currency_code"):
                currencies.add(str(money["currency_code"]))
            yen += _yen(money.get("amount", item.get("subtotal", 0)), "refund_line_items[].subtotal")
        return f"shopify:o:{order_id}", {"order_id": order_id, "refund_id": _id(body.get("id"), "id"), "yen": yen,
                                         "currencies": sorted(currencies)}
    if topic == "shop/redact":
        return f"shopify:shop:{shop}", {"shop": shop}
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise Malformed("customer is missing")
    customer_id = _id(customer.get("id"), "customer.id")
    orders = [_id(o, "orders") for o in (body.get("orders_requested") or body.get("orders_to_redact") or [])][:1000]
    request = body["data_request"] if isinstance(body.get("data_request"), dict) else {}
    return f"shopify:c:{customer_id}", {"customer_id": customer_id, "orders": orders, "shop": shop,
                                        "request_id": str(request.get("id") or "")[:64]}


async def handle(services: Services, raw: dict) -> str:
    """One queued Shopify webhook, in the worker. Returns the outcome the worker counts."""
    topic, facts, webhook_id = raw["topic"], raw["facts"], raw["webhookEventId"]
    shopify = services.program.shopify
    counters = services.program.counters
    if topic == "orders/paid":
        refused = [c for c in (facts["currency"], facts["presentment_currency"]) if c != CURRENCY]
        if refused:
            log.warning("shopify order %s refused: currency %s, points are per yen (JPY)", facts["order_id"],
                        refused[0])
            await counters.count("shopify_orders_refused_currency")
            return "shopify_refused"
        at = facts.get("at") or services.program.now_ms()
        order = PaidOrder(order_id=facts["order_id"], amount=int(facts["amount"]), customer_id=facts["customer_id"],
                          coupon_codes=tuple(facts["codes"]), at_ms=min(at, services.program.now_ms()),
                          address_mark=facts.get("address"))
        paid = await shopify.paid(order)
        if paid.tell and paid.purchase is not None and paid.user_id is not None:
            await notices.after_purchase(services, paid.purchase, paid.user_id, order.order_id)
        log.info("shopify order %s: %s%s", order.order_id, paid.status,
                 f" (points {paid.purchase.answer.get('points_awarded')})" if paid.purchase else "")
        return f"shopify_{paid.status}"
    if topic == "refunds/create":
        if any(c != CURRENCY for c in facts["currencies"]):
            log.warning("shopify refund %s refused: currency %s", facts["refund_id"], facts["currencies"])
            await counters.count("shopify_refunds_refused_currency")
            return "shopify_refused"
        outcome = await shopify.refund(facts["order_id"], facts["refund_id"], int(facts["yen"]))
        await notices.after_refund(services, facts["order_id"])  # a referral it voided: outbound webhooks, once
        log.info("shopify refund %s of order %s (%d yen): %s, %d points reversed", facts["refund_id"],
                 facts["order_id"], facts["yen"], outcome.status, outcome.points_reversed)
        return f"shopify_refund_{outcome.status}"
    if topic == "customers/data_request":
        await shopify.data_request(facts["request_id"] or webhook_id, facts["shop"], facts["customer_id"],
                                   facts["orders"])
        return "shopify_data_request"
    if topic == "customers/redact":
        await shopify.redact_customer(facts["customer_id"], facts["orders"])
        return "shopify_customer_redacted"
    await shopify.redact_shop(facts["shop"])
    return "shopify_shop_redacted"
