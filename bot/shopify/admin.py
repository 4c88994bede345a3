"""Shopify's GraphQL Admin API, for the one thing we ask of it: a one-time discount code per claim.

Its own aiohttp session and timeouts, as bot/line/client.py has for LINE. Shopify limits an app on a store by
query cost, a leaky bucket (README "Spending points at the online shop"): every answer carries
`extensions.cost.throttleStatus` (maximumAvailable, currentlyAvailable, restoreRate), so we keep the bucket as
the last answer left it, refilled at its rate since, and wait before a call that would not fit. A THROTTLED
answer (another process of ours, or another of the shop's tools sharing nothing with us but the store, never
our own bucket) is waited out and tried again without counting as a failure. 5xx, 429 and timeouts are tried
again with a doubling wait, four tries in all (Settings.shopify_retry_attempts); anything else is Shopify refusing, for good.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from bot.config import SHOPIFY_API_VERSION, Settings
from rewards.shop_discounts import ShopDiscount, ShopRefused

log = logging.getLogger(__name__)

CREATE_DISCOUNT = """
mutation discountCodeBasicCreate($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
""".strip()

MUTATION_COST = 10  # Shopify's price of a mutation, until an answer tells us the real one
MAX_THROTTLED_WAITS = 20  # THROTTLED answers waited out for one call before giving up
MAX_WAIT_SECONDS = 30.0  # never wait longer than this for the bucket, whatever an answer claims


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def discount_input(discount: ShopDiscount) -> dict[str, Any]:
    """DiscountCodeBasicInput (API 2025-10): one use in all, once per customer, the linked customer only."""
    if discount.yen_off:
        value: dict[str, Any] = {"discountAmount": {"amount": str(discount.yen_off), "appliesOnEachItem": False}}
    else:
        value = {"percentage": float(Decimal(discount.percent_off) / 100)}
    customer = discount.customer_id
    context: dict[str, Any] = ({"customers": {"add": [f"gid://shopify/Customer/{customer}"]}}
                               if customer and customer.isdigit() else {"all": "ALL"})
    fields: dict[str, Any] = {
        "title": discount.title, "code": discount.code, "startsAt": iso(discount.starts_at_ms), "context": context,
        "customerGets": {"value": value, "items": {"all": True}}, "usageLimit": 1, "appliesOncePerCustomer": True}
    if discount.ends_at_ms:
        fields["endsAt"] = iso(discount.ends_at_ms)
    if discount.minimum_order:
        fields["minimumRequirement"] = {"subtotal": {"greaterThanOrEqualToSubtotal": str(discount.minimum_order)}}
    return fields


class Transient(Exception):
    """Worth another try after a wait (5xx, 429, a timeout, a broken connection)."""


class ShopifyAdmin:
    """Created inside the running loop (it opens an aiohttp session) and closed on shutdown."""

    def __init__(self, settings: Settings):
        assert settings.shopify_api_base_url and settings.shopify_admin_token
        self.url = f"{settings.shopify_api_base_url}/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
        self.attempts = max(1, settings.shopify_retry_attempts)
        self.base_wait = settings.shopify_retry_base_seconds
        self._session = ClientSession(
            timeout=ClientTimeout(total=settings.shopify_timeout_seconds),
            headers={"X-Shopify-Access-Token": settings.shopify_admin_token, "Content-Type": "application/json",
                     "Accept": "application/json"})
        # the cost bucket as the last answer left it; None until the first answer
        self._available: float | None = None
        self._maximum = 0.0
        self._restore = 0.0
        self._seen_at = 0.0
        self._cost = float(MUTATION_COST)
        self._bucket = asyncio.Lock()  # one caller at a time takes its share of the bucket

    async def close(self) -> None:
        await self._session.close()

    # ---- the bucket -------------------------------------------------------------------------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def available(self) -> float | None:
        """What the bucket holds now, by our reckoning (None: no answer seen yet)."""
        if self._available is None:
            return None
        return min(self._maximum, self._available + (self._now() - self._seen_at) * self._restore)

    def _learn(self, body: Any) -> dict[str, Any]:
        """Keep the bucket an answer reports; the cost part of it."""
        cost = (body.get("extensions") or {}).get("cost") if isinstance(body, dict) else None
        if not isinstance(cost, dict):
            return {}
        status = cost.get("throttleStatus") or {}
        try:
            self._maximum = float(status["maximumAvailable"])
            self._available = float(status["currentlyAvailable"])
            self._restore = float(status["restoreRate"])
            self._seen_at = self._now()
            if cost.get("requestedQueryCost") is not None:
                self._cost = float(cost["requestedQueryCost"])
        except (KeyError, TypeError, ValueError):
            return {}
        return cost

    async def _take(self) -> None:
        """Wait until the next call's cost fits in the bucket, then count it as spent."""
        async with self._bucket:
            available = self.available()
            if available is None:
                return
            if available < self._cost and self._restore > 0:
                await asyncio.sleep(min(MAX_WAIT_SECONDS, (self._cost - available) / self._restore))
                available = self.available() or 0.0
            self._available, self._seen_at = available - self._cost, self._now()

    # ---- the call ---------------------------------------------------------------------------------------------
    async def create_discount(self, discount: ShopDiscount) -> bool:
        """True: made now; False: the code was there already (an earlier try of the same claim). Raises
        ShopRefused when Shopify refuses it or keeps failing past the retries."""
        body = {"query": CREATE_DISCOUNT, "variables": {"basicCodeDiscount": discount_input(discount)}}
        failures, throttled = 0, 0
        while True:
            await self._take()
            try:
                answer = await self._post(body)
            except Transient as exc:
                failures += 1
                log.warning("shopify: discount code %s, try %d of %d failed: %s", discount.code, failures,
                            self.attempts, exc)
                if failures >= self.attempts:
                    raise ShopRefused(f"Shopify unavailable after {failures} tries: {exc}") from exc
                await asyncio.sleep(self.base_wait * 2 ** (failures - 1))
                continue
            errors = answer.get("errors")
            if errors:
                if _throttled(errors) and throttled < MAX_THROTTLED_WAITS:
                    throttled += 1
                    await asyncio.sleep(self._refill_wait())
                    continue
                raise ShopRefused(f"Shopify refused the request: {json.dumps(errors)[:300]}")
            payload = (answer.get("data") or {}).get("discountCodeBasicCreate") or {}
            user_errors = payload.get("userErrors") or []
            if any(e.get("code") == "TAKEN" and "code" in (e.get("field") or []) for e in user_errors):
                log.info("shopify: discount code %s was made by an earlier try: adopted", discount.code)
                return False
            if user_errors or not payload.get("codeDiscountNode"):
                raise ShopRefused(f"Shopify refused the discount: {json.dumps(user_errors)[:300]}")
            return True

    def _refill_wait(self) -> float:
        """How long until the bucket holds the next call's cost (at least a tenth of a second)."""
        available = self.available() or 0.0
        if self._restore <= 0:
            return 1.0
        return min(MAX_WAIT_SECONDS, max(0.1, (self._cost - available) / self._restore))

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._session.post(self.url, json=body) as response:
                text = await response.text()
                status = response.status
        except (ClientError, TimeoutError) as exc:
            raise Transient(type(exc).__name__) from exc
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            answer = {}
        self._learn(answer)
        if status == 429 or status >= 500:
            raise Transient(f"HTTP {status}")
        if status != 200 or not isinstance(answer, dict):
            raise ShopRefused(f"Shopify answered {status}: {text[:300]}")
        return answer


def _throttled(errors: Any) -> bool:
    return isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors)
