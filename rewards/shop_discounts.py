"""Rewards of issue "shopify_discount": what the catalog asks of the shop, and the code a claim gets there.

The domain stays pure: the catalog is handed something that can create a one-time discount code in the shop
(bot/shopify/admin.py talks to Shopify's Admin API) and only knows this protocol and its two outcomes.

The code is derived from the claim id alone, so however often a claim is tried again (a crash between the
shop's answer and our write, a double tap, the stale sweep), it asks the shop for the same code, and the shop
refusing it as already taken means our earlier try made it: adopted, never a second code.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from rewards.codes import ALPHABET

CODE_PREFIX = "SK-"  # shows staff in the Shopify admin where a code came from
CODE_LENGTH = 12  # 32**12 ≈ 1.2e18: two claims never meet on one code

SHOP_UNAVAILABLE = "SHOP_UNAVAILABLE"  # the claim's refusal when the shop would not make the code


def discount_code(claim_id: str) -> str:
    """SK-ABCD-EFGH-JKLM: the same claim id, the same code; nobody can work one out without the claim id."""
    digest = hashlib.sha256(f"shokai-shop-discount:{claim_id}".encode()).digest()
    raw = "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:CODE_LENGTH])  # 256 % 32 == 0: no bias
    return CODE_PREFIX + "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


@dataclass(frozen=True)
class ShopDiscount:
    """One code to make: used once in all, by one customer when we know who they are in the shop."""

    code: str
    title: str  # what staff see in the Shopify admin
    yen_off: int  # one of yen_off / percent_off is set
    percent_off: int
    minimum_order: int  # yen; 0: any order
    starts_at_ms: int
    ends_at_ms: int  # 0: no end
    customer_id: str | None  # the linked shop customer (Shopify's numeric id); None: any customer


class ShopRefused(Exception):
    """The shop would not make the code, for good (refused it, or kept failing past the retries)."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


class DiscountShop(Protocol):
    async def create_discount(self, discount: ShopDiscount) -> bool:
        """Make the code: True when made now, False when it was there already (an earlier try made it).
        Raises ShopRefused."""
        ...
