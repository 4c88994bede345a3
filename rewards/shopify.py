"""A Shopify store's orders, refunds and privacy requests, as the program's own purchases, refunds and erasures.

The webhook side (bot/shopify/) checks the signature, reads Shopify's JSON into the plain values below and
calls these in the worker, one order's webhooks at a time. Everything here is idempotent, so a worker that dies
mid-way and runs the same webhook again changes nothing twice:

- a paid order is a purchase through the paths the conversions API uses (Orders.record_purchase by user,
  Links.record_customer_purchase by customer: kept while the customer is not linked), so the order id is
  credited once whichever reported it first;
- a refund is refund.lua's partial refund, once per refund id; a refund that comes before its order is kept
  under the order id and applied right after the order is recorded;
- a customer's erasure (customers/redact) erases the LINE member linked to them as their own request would
  (rewards/privacy.py: points forfeited, the ledger's amounts kept under a pseudonym); the shop's (shop/redact)
  unlinks every customer and keeps the LINE members; both drop the orders kept for a customer linked to nobody.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from rewards import keys
from rewards.counters import Counters
from rewards.errors import ProgramError
from rewards.friend_coupons import FriendCoupons
from rewards.links import Links, unattributed
from rewards.members import Members
from rewards.orders import Orders, Purchase
from rewards.part import Part
from rewards.privacy import Privacy
from rewards.ring_watch import RingWatch, mark_of
from rewards.rules import Rules

log = logging.getLogger(__name__)

EARLY_REFUND_DAYS = 30  # a refund waits this long for its order (Shopify retries a webhook for 48 hours)


@dataclass(frozen=True)
class PaidOrder:
    order_id: str
    amount: int  # yen: the order's current subtotal
    at_ms: int
    customer_id: str | None
    coupon_codes: tuple[str, ...] = ()
    address_mark: str | None = None  # the delivery address as a ring mark (hashed at intake: ring_watch.mark_of)


@dataclass(frozen=True)
class RefundOutcome:
    status: str  # refunded | already | kept (before its order) | dropped (a kept order) | none
    points_reversed: int = 0
    yen_left: int = 0
    referral_voided: bool = False


@dataclass(frozen=True)
class PaidOutcome:
    status: str  # credited | unattributed | unmatched | refused
    user_id: str | None = None
    purchase: Purchase | None = None
    reason: str | None = None
    refunds: list[RefundOutcome] = field(default_factory=list)  # refunds that came before the order, applied now

    @property
    def tell(self) -> bool:
        """Whether the purchase's notices follow: not when an earlier refund took it back at once."""
        return self.purchase is not None and not any(r.referral_voided or (r.status == "refunded" and r.yen_left == 0)
                                                     for r in self.refunds)


class Shopify(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters, members: Members,
                 orders: Orders, links: Links, friend_coupons: FriendCoupons, privacy: Privacy,
                 rings: RingWatch | None = None):
        super().__init__(redis, rules, now_ms)
        self.privacy = privacy
        self.rings = rings
        self.counters = counters
        self.members = members
        self.orders = orders
        self.links = links
        self.friend_coupons = friend_coupons
        self._kept_refund = self.script("kept_order_refund")
        self._swap = self.script("link_swap")
        self._move_order = self.script("order_move")

    # ---- orders/paid ------------------------------------------------------------------------------------------
    async def paid(self, order: PaidOrder) -> PaidOutcome:
        """The buyer: whoever the order was credited to already (a re-send, or the conversions API first), the
        LINE user linked to the customer, the friend whose welcome coupon the order used, else kept for the
        customer until they link. Then any refund that came first."""
        if order.customer_id:
            await self.redis.sadd(keys.SHOPIFY_CUSTOMERS, order.customer_id)
        try:
            outcome = await self._record(order)
        except ProgramError as exc:  # e.g. the order id was reported for someone else: nothing more to do
            log.warning("shopify order %s refused: %s %s", order.order_id, exc.code, exc)
            await self.counters.count("shopify_orders_refused")
            return PaidOutcome("refused", reason=exc.code)
        if outcome.status == "unmatched":
            log.info("shopify order %s names nobody we know (no customer, no friend coupon): not kept", order.order_id)
            await self.counters.count("shopify_orders_unmatched")
            return outcome
        refunds = await self._apply_early_refunds(order.order_id)
        if outcome.purchase is not None and outcome.purchase.new:
            await self.counters.count("shopify_orders")
            await self._note_ring_signals(order, outcome.user_id)
        return PaidOutcome(outcome.status, outcome.user_id, outcome.purchase, refunds=refunds)

    async def _record(self, order: PaidOrder) -> PaidOutcome:
        owner_raw = await self.redis.get(keys.order_owner(order.order_id))
        owner = owner_raw.decode() if owner_raw else ""
        if owner.startswith("U"):  # recorded before (a re-send, the API): its first answer, nothing more awarded
            purchase = await self.orders.record_purchase(order.order_id, owner, order.amount, order.at_ms)
            return PaidOutcome("credited", owner, purchase)
        customer = unattributed(owner) if owner else None
        if customer is None and order.customer_id and await self.links.user_of(order.customer_id) is None:
            for code in order.coupon_codes:  # a friend's welcome coupon names its friend
                friend = await self.friend_coupons.friend_by_coupon(code)
                if friend:
                    purchase = await self.orders.record_purchase(order.order_id, friend, order.amount, order.at_ms)
                    return PaidOutcome("credited", friend, purchase)
        customer = customer or order.customer_id
        if customer:
            by_customer = await self.links.record_customer_purchase(order.order_id, customer, order.amount,
                                                                    order.at_ms)
            return PaidOutcome(by_customer.status, by_customer.user_id, by_customer.purchase)
        for code in order.coupon_codes:  # a guest checkout (no customer) with a friend's coupon
            friend = await self.friend_coupons.friend_by_coupon(code)
            if friend:
                purchase = await self.orders.record_purchase(order.order_id, friend, order.amount, order.at_ms)
                return PaidOutcome("credited", friend, purchase)
        return PaidOutcome("unmatched")

    async def _note_ring_signals(self, order: PaidOrder, buyer: str | None) -> None:
        """[rings]: the order's Shopify customer and address (hashed), and any friend's coupon it carried that is
        not the buyer's own (someone else's coupon: rewards/ring_watch.py)."""
        if self.rings is None or not self.rings.on or not buyer:
            return
        marks = [m for m in (order.address_mark, mark_of("cust", order.customer_id) if order.customer_id else None) if m]
        holders = [await self.friend_coupons.friend_by_coupon(code) for code in order.coupon_codes]
        await self.rings.note(buyer, marks, [h for h in holders if h])

    # ---- refunds/create -------------------------------------------------------------------------------------
    async def refund(self, order_id: str, refund_id: str, yen: int, retried: bool = False) -> RefundOutcome:
        """Reverse what `yen` of the order's subtotal earned (refund.lua), once per refund id. An order we do not
        know yet keeps the refund until it comes."""
        owner_raw = await self.redis.get(keys.order_owner(order_id))
        owner = owner_raw.decode() if owner_raw else ""
        if not owner:
            early = keys.shopify_early_refunds(order_id)
            if await self.redis.hsetnx(early, refund_id, yen):
                await self.counters.count("shopify_refunds_early")
                log.info("shopify refund %s came before its order %s: kept until the order comes", refund_id, order_id)
            await self.redis.expire(early, EARLY_REFUND_DAYS * 86_400)
            await self.redis.sadd(keys.SHOPIFY_EARLY_ORDERS, order_id)
            return RefundOutcome("kept")
        if owner.startswith("x:"):  # a kept order dropped already
            return RefundOutcome("already")
        customer = unattributed(owner)
        if customer is not None:  # kept for a customer not linked yet: credit only what is left when they link
            outcome, left = await self._kept_refund(keys=[keys.customer_orders(customer)],
                                                    args=[order_id, refund_id, yen])
            if outcome.decode() == "UNKNOWN_ORDER" and not retried:  # credited (or dropped) meanwhile: again
                return await self.refund(order_id, refund_id, yen, retried=True)
            if outcome.decode() == "ALREADY_REFUNDED":
                return RefundOutcome("already", yen_left=int(left))
            if outcome.decode() == "OK" and int(left) > 0:
                await self.counters.count("shopify_refunds")
                return RefundOutcome("refunded", yen_left=int(left))
            await self.links.refund(order_id)  # nothing left (or gone meanwhile): dropped, never credited
            await self.counters.count("shopify_refunds")
            return RefundOutcome("dropped")
        status, reversed_points, left, voided = await self.orders.refund_part(order_id, refund_id, yen)
        if status == "ALREADY_REFUNDED":
            return RefundOutcome("already", yen_left=left)
        await self.counters.count("shopify_refunds")
        await self.counters.count("points_reversed_by_refunds", reversed_points)
        return RefundOutcome("refunded", reversed_points, left, voided)

    async def _apply_early_refunds(self, order_id: str) -> list[RefundOutcome]:
        early = keys.shopify_early_refunds(order_id)
        waiting = await self.redis.hgetall(early)
        applied = []
        for refund_id, yen in sorted(waiting.items()):
            applied.append(await self.refund(order_id, refund_id.decode(), int(yen)))
            await self.redis.hdel(early, refund_id)  # after: a crash before it applies it again, which is a no-op
        if waiting:
            await self.redis.srem(keys.SHOPIFY_EARLY_ORDERS, order_id)
        return applied

    # ---- privacy (Shopify's mandatory compliance webhooks) ----------------------------------------------------
    async def data_request(self, request_id: str, shop: str, customer_id: str, orders_requested: list[str]) -> dict:
        """customers/data_request: what we hold about the customer, kept for staff, who must send it to the shop
        within 30 days (GET /api/v1/shopify/data-requests)."""
        user = await self.links.user_of(customer_id)
        view = await self.members.member(user) if user else None
        kept = {k.decode(): json.loads(v) for k, v in
                (await self.redis.hgetall(keys.customer_orders(customer_id))).items()}
        reported = sorted(m.decode() for m in await self.redis.smembers(keys.customer_order_ids(customer_id)))
        held = {
            "request_id": request_id, "shop": shop, "customer_id": customer_id, "received_at": self.now_ms(),
            "orders_requested": orders_requested,
            "data": {"line_user_id": user, "member": _plain(view) if view else None,
                     "orders_reported": reported, "orders_kept_unlinked": kept}}
        if await self.redis.hsetnx(keys.SHOPIFY_DATA_REQUESTS, request_id, json.dumps(held, ensure_ascii=False, default=str)):
            await self.counters.count("shopify_data_requests")
            log.warning("Shopify data request %s for customer %s of %s: answer the shop within 30 days (GET "
                        "/api/v1/shopify/data-requests)", request_id, customer_id, shop)
        return held

    async def data_requests(self) -> list[dict]:
        stored = await self.redis.hgetall(keys.SHOPIFY_DATA_REQUESTS)
        return sorted((json.loads(v) for v in stored.values()), key=lambda r: r["received_at"])

    async def redact_customer(self, customer_id: str, orders_to_redact: list[str] = (),  # type: ignore[assignment]
                              erase_member: bool = True) -> dict[str, int]:
        """customers/redact: forget the customer. The LINE member linked to them is erased as on their own request
        (rewards/privacy.py, audited under the pseudonym: the link both ways, their data, points forfeited); with
        `erase_member` False (shop/redact) only the link goes, both sides, and the member stays. Orders kept for
        the customer are dropped, what we knew of their orders and any data request kept for them go too.
        Idempotent."""
        user = await self.links.user_of(customer_id)
        if user and erase_member:
            await self.privacy.erase(user, by="shopify")
        elif user:
            await self._swap(keys=[keys.member(user)], args=[keys.field("customer_id"), customer_id, ""])
            await self.members.audit("shopify", "customer_redacted", user, op=f"shopify:redact:{customer_id}")
        dropped = 0
        for raw_id in await self.redis.hkeys(keys.customer_orders(customer_id)):
            order_id = raw_id.decode()
            moved = await self._move_order(keys=[keys.order_owner(order_id)],
                                           args=[f"c:{customer_id}", f"x:{customer_id}"])
            dropped += moved.decode() == f"x:{customer_id}"
        for order_id in orders_to_redact:
            await self.redis.delete(keys.shopify_early_refunds(order_id))
        for key in (keys.customer_orders(customer_id), keys.customer_order_ids(customer_id),
                    keys.customer(customer_id)):
            await self.redis.delete(key)
        for request_id, raw in (await self.redis.hgetall(keys.SHOPIFY_DATA_REQUESTS)).items():
            if json.loads(raw).get("customer_id") == customer_id:
                await self.redis.hdel(keys.SHOPIFY_DATA_REQUESTS, request_id)
        await self.redis.srem(keys.SHOPIFY_CUSTOMERS, customer_id)
        await self.counters.count("shopify_customers_redacted")
        log.info("Shopify customer %s redacted (linked user: %s, kept orders dropped: %d)", customer_id,
                 "yes" if user else "no", dropped)
        return {"unlinked": int(bool(user)), "orders_dropped": dropped}

    async def redact_shop(self, shop: str) -> int:
        """shop/redact (48 hours after the store uninstalled the app): every customer's link and kept orders go,
        as for customers/redact, and the refunds still waiting for an order. Returns the customers redacted.

        The LINE members linked to them stay members (unlinked): the store leaving the app is not each person
        asking to be forgotten, and their points are theirs, earned with the LINE account (rewards/privacy.py)."""
        customers = [c.decode() for c in await self.redis.smembers(keys.SHOPIFY_CUSTOMERS)]
        for customer_id in customers:
            await self.redact_customer(customer_id, erase_member=False)
        for order_id in await self.redis.smembers(keys.SHOPIFY_EARLY_ORDERS):
            await self.redis.delete(keys.shopify_early_refunds(order_id.decode()))
        await self.redis.delete(keys.SHOPIFY_EARLY_ORDERS)  # one key a call: they may sit on different nodes
        await self.redis.delete(keys.SHOPIFY_DATA_REQUESTS)
        await self.counters.count("shopify_shops_redacted")
        log.warning("Shopify shop %s redacted: %d customers forgotten", shop, len(customers))
        return len(customers)


def _plain(view: Any) -> Any:
    """A member view as JSON-ready data."""
    return asdict(view) if is_dataclass(view) and not isinstance(view, type) else view
