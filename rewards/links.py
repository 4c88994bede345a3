"""Shop customers linked to LINE users (LINE's account link), and the orders a shop reports by customer id.

The shop's server asks for a nonce for (link token, customer) after its customer logged in; LINE then sends the
accountLink event with that nonce for the LINE user who opened the link. A nonce works once and for 10 minutes.

One customer is linked to one LINE user at a time and one user to one customer. The customer's record
(`customer.user`, in the customer's slot) is the truth; the member's `customer_id` field (in the member's slot)
is its mirror, believed only while the customer's record names that member back. Linking is a sequence of
idempotent single-slot steps driven by an intent kept under the nonce (LINKS_SETTLE), written before the first
step, so a crash mid-way is finished by the event's re-run or by the worker's clock (`finish_all`), the way
referrals.settle() is: never a cross-slot script.

An order for a customer not linked yet is kept (its owner key says 'c:<customer>') and credited to the member
when the customer links within the rules' window, through Orders.record_purchase with the same order id, so it
pays once whatever is retried; a refund before that drops it ('x:<customer>').
"""
from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rewards import keys
from rewards.counters import Counters
from rewards.errors import ProgramError
from rewards.members import Members
from rewards.orders import Orders, Purchase
from rewards.part import Part
from rewards.rules import Rules

log = logging.getLogger(__name__)

# LINE's link token lives 10 minutes and a nonce is minted after its token was issued, so a nonce living as
# long covers every token still usable; longer would only widen the window for a leaked nonce.
NONCE_LIFE_MS = 10 * 60 * 1000
# the used or expired nonce is kept a day after, so a late or replayed event is told apart from a made-up one
NONCE_KEPT_SECONDS = 86_400
NONCE_BYTES = 24  # 192 bits, base64url: LINE asks for at least 128 bits, hard to guess, used once
LINK_TOKEN_SECONDS = 600  # LINE's link token lasts 10 minutes
REFUSALS = ("failed", "unknown", "expired", "used", "other_user")


@dataclass(frozen=True)
class LinkOutcome:
    status: str  # linked | already (the same customer again) | failed | unknown | expired | used | other_user
    customer_id: str | None = None
    moved_from_user: str | None = None  # the customer was linked to this other LINE user before
    moved_from_customer: str | None = None  # this user was linked to this other customer before
    credited: list[tuple[str, Purchase]] = field(default_factory=list)  # (order id, purchase) credited now

    @property
    def ok(self) -> bool:
        return self.status in ("linked", "already")


@dataclass(frozen=True)
class CustomerPurchase:
    status: str  # credited (as a user's order) | unattributed (kept until the customer links)
    user_id: str | None
    purchase: Purchase | None


def unattributed(owner: str) -> str | None:
    """The customer of an order owner 'c:<customer>' (kept, not credited), else None."""
    return owner[2:] if owner.startswith("c:") else None


class Links(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters,
                 members: Members, orders: Orders):
        super().__init__(redis, rules, now_ms)
        self.counters = counters
        self.members = members
        self.orders = orders
        self._take = self.script("link_nonce_take")
        self._link_customer = self.script("link_customer")
        self._swap = self.script("link_swap")
        self._move_order = self.script("order_move")

    # ---- who is who -------------------------------------------------------------------------------------------
    async def user_of(self, customer_id: str) -> str | None:
        user = await self.redis.hget(keys.customer(customer_id), "user")
        return user.decode() if user else None

    async def customer_of(self, uid: str) -> str | None:
        """The customer linked to this member: their mirror field, when the customer's record agrees."""
        raw = await self.redis.hget(keys.member(uid), keys.field("customer_id"))
        if not raw:
            return None
        customer_id = raw.decode()
        return customer_id if await self.user_of(customer_id) == uid else None

    # ---- the flow -----------------------------------------------------------------------------------------------
    async def remember_link_token(self, token: str, uid: str) -> None:
        """A link token LINE issued us for this user: the shop's server may trade it for a nonce within its life."""
        await self.redis.set(keys.link_token(token), uid, ex=LINK_TOKEN_SECONDS)

    async def create_nonce(self, link_token: str, customer_id: str) -> str:
        """A nonce for the shop's customer, bound to a link token we issued and still alive."""
        uid = await self.redis.get(keys.link_token(link_token))
        if uid is None:
            raise ProgramError("INVALID_LINK_TOKEN", "link_token is not one this bot issued in the last 10 minutes")
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        now = self.now_ms()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.link_nonce(nonce), mapping={"customer": customer_id, "link_token": link_token,
                                                       "user": uid.decode(), "created": now,
                                                       "expires_at": now + NONCE_LIFE_MS})
            pipe.expire(keys.link_nonce(nonce), NONCE_KEPT_SECONDS)
            await pipe.execute()
        await self.counters.count("account_link_nonces")
        return nonce

    async def account_link(self, uid: str, result: str, nonce: str, event_id: str) -> LinkOutcome:
        """The accountLink event: with result "ok" and a nonce we minted, link `uid` to the nonce's customer.
        Anything else changes nothing and is counted. Taken again (the same event re-run) it answers the same."""
        if result != "ok":
            return await self._refused("failed")
        taken = await self._take(keys=[keys.link_nonce(nonce)], args=[event_id, uid, self.now_ms()])
        verdict = taken[0].decode()
        if verdict != "OK":
            return await self._refused(verdict.lower())
        customer_id = taken[1].decode()
        intent = await self.redis.hget(keys.LINKS_SETTLE, nonce)
        if intent is None and await self.redis.hget(keys.link_nonce(nonce), "done"):
            # a re-run after the link finished: its steps are not taken again (the customer may have been linked
            # to someone else since, which a second run must not undo)
            return LinkOutcome(status="linked", customer_id=customer_id)
        if intent is None:  # the first run
            intent = json.dumps({"user": uid, "customer": customer_id, "at": self.now_ms()}).encode()
            await self.redis.hsetnx(keys.LINKS_SETTLE, nonce, intent)
            intent = await self.redis.hget(keys.LINKS_SETTLE, nonce) or intent
        return await self._finish(nonce, json.loads(intent))

    async def _refused(self, why: str) -> LinkOutcome:
        await self.counters.count(f"account_link_refused_{why}")
        log.info("account link refused: %s", why)
        return LinkOutcome(status=why)

    async def _finish(self, nonce: str, intent: dict[str, Any]) -> LinkOutcome:
        """The link's steps, each idempotent and in one slot; safe to run any number of times."""
        uid, customer_id, at = intent["user"], intent["customer"], int(intent["at"])
        if "prev_customer" not in intent:  # what the member was linked to before, kept before we overwrite it
            before = await self.redis.hget(keys.member(uid), keys.field("customer_id"))
            intent["prev_customer"] = before.decode() if before else ""
            await self.redis.hset(keys.LINKS_SETTLE, nonce, json.dumps(intent))
        first, prev_user_raw = await self._link_customer(keys=[keys.customer(customer_id)], args=[uid, nonce, at])
        prev_user = prev_user_raw.decode() or None
        moved_from_user = prev_user if prev_user and prev_user != uid else None
        if moved_from_user:  # the customer leaves their old LINE user
            await self._swap(keys=[keys.member(moved_from_user)], args=[keys.field("customer_id"), customer_id, ""])
            await self.members.audit("account_link", "relink_customer", uid, op=f"link:{nonce}:customer",
                                     customer=customer_id, from_user=moved_from_user, to_user=uid)
        await self.redis.hset(keys.member(uid), keys.field("customer_id"), customer_id)
        prev_customer = intent["prev_customer"]
        moved_from_customer = prev_customer if prev_customer and prev_customer != customer_id else None
        if moved_from_customer:  # the user leaves their old customer
            await self._swap(keys=[keys.customer(moved_from_customer)], args=["user", uid, ""])
            await self.members.audit("account_link", "relink_user", uid, op=f"link:{nonce}:user",
                                     customer=customer_id, from_customer=moved_from_customer)
        await self.redis.sadd(keys.SHOPIFY_CUSTOMERS, customer_id)  # the shop's erasure (shop/redact) finds it
        credited = await self.credit(customer_id, at)
        await self.redis.hset(keys.link_nonce(nonce), "done", 1)  # before the intent goes: see account_link
        await self.redis.hdel(keys.LINKS_SETTLE, nonce)
        if int(first):
            await self.counters.count("account_links")
            if moved_from_user or moved_from_customer:
                await self.counters.count("account_relinks")
        status = "already" if prev_user == uid and not moved_from_customer else "linked"
        return LinkOutcome(status=status, customer_id=customer_id, moved_from_user=moved_from_user,
                           moved_from_customer=moved_from_customer, credited=credited)

    async def finish_all(self) -> int:
        """Finish every link a crash left half done (the worker's clock)."""
        pending = await self.redis.hgetall(keys.LINKS_SETTLE)
        for nonce, intent in pending.items():
            await self._finish(nonce.decode(), json.loads(intent))
        return len(pending)

    # ---- orders by customer id ----------------------------------------------------------------------------------
    async def record_customer_purchase(self, order_id: str, customer_id: str, amount: int, at_ms: int | None = None,
                                       fingerprint: str | None = None) -> CustomerPurchase:
        """An order the shop reports by its customer id: the linked member's purchase, exactly as by user id;
        for a customer not linked yet, kept (unattributed) until they link. The same order id again answers
        with the order's state now and awards nothing more."""
        at = at_ms if at_ms is not None else self.now_ms()
        owner_key = keys.order_owner(order_id)
        owner_raw = await self.redis.get(owner_key)
        if owner_raw is None:
            uid = await self.user_of(customer_id)
            await self.redis.sadd(keys.customer_order_ids(customer_id), order_id)  # before the owner: see below
            if uid is not None:
                purchase = await self.orders.record_purchase(order_id, uid, amount, at, fingerprint)
                return CustomerPurchase("credited", uid, purchase)
            await self.redis.set(owner_key, f"c:{customer_id}", nx=True)
            owner_raw = await self.redis.get(owner_key)
        owner = owner_raw.decode() if owner_raw else ""
        if owner.startswith("U"):  # credited already (to whoever the customer was linked to then)
            if not await self.redis.sismember(keys.customer_order_ids(customer_id), order_id):
                raise ProgramError("ORDER_CONFLICT", "this order_id was already reported for someone else")
            return CustomerPurchase("credited", owner, await self.orders.record_purchase(order_id, owner, amount,
                                                                                          at, fingerprint))
        if owner == f"x:{customer_id}":
            raise ProgramError("ORDER_DROPPED", "this order was dropped before it was credited: refunded, or its "
                                                "customer did not link within the rules' window")
        if owner != f"c:{customer_id}":
            raise ProgramError("ORDER_CONFLICT", "this order_id was already reported for another customer")
        kept = json.dumps({"amount": amount, "at": at, "fingerprint": fingerprint})
        if await self.redis.hsetnx(keys.customer_orders(customer_id), order_id, kept):
            await self.counters.count("orders_unattributed")
        await self.redis.expire(keys.customer_orders(customer_id), self.rules.unattributed_days * 86_400 + 86_400)
        # linked meanwhile (the link's credit step may have run before this order was kept): credit it now
        uid = await self.user_of(customer_id)
        if uid is not None:
            credited = await self.credit(customer_id, self.now_ms(), only=order_id)
            if credited:
                return CustomerPurchase("credited", uid, credited[0][1])
        return CustomerPurchase("unattributed", None, None)

    async def credit(self, customer_id: str, linked_at: int, only: str | None = None) -> list[tuple[str, Purchase]]:
        """Credit the customer's kept orders to the user the customer is linked to: those that happened within
        the rules' window before `linked_at`. Each: the owner moves 'c:<customer>' -> user (one step), then
        the purchase is recorded under its order id (once, however often this runs), then it is forgotten."""
        stored = await self.redis.hgetall(keys.customer_orders(customer_id))
        credited: list[tuple[str, Purchase]] = []
        for raw_id, raw in stored.items():
            order_id = raw_id.decode()
            if only is not None and order_id != only:
                continue
            kept = json.loads(raw)
            owner_key = keys.order_owner(order_id)
            if int(kept["at"]) + self.rules.unattributed_ms < linked_at:
                if (await self._move_order(keys=[owner_key], args=[f"c:{customer_id}", f"x:{customer_id}"])
                        ).decode() == f"x:{customer_id}":
                    await self.counters.count("orders_unattributed_expired")
                await self.redis.hdel(keys.customer_orders(customer_id), order_id)
                continue
            uid = await self.user_of(customer_id)
            if uid is None:
                return credited  # unlinked meanwhile: nothing to credit to
            owner = (await self._move_order(keys=[owner_key], args=[f"c:{customer_id}", uid])).decode()
            if owner.startswith("U"):  # moved now, or by an earlier run (to whoever it was linked to then)
                purchase = await self.orders.record_purchase(order_id, owner, int(kept["amount"]), int(kept["at"]),
                                                             kept.get("fingerprint"))
                if purchase.new:
                    await self.counters.count("orders_credited_on_link")
                credited.append((order_id, purchase))
            await self.redis.hdel(keys.customer_orders(customer_id), order_id)
        return credited

    async def refund(self, order_id: str) -> tuple[str, int]:
        """A refund: a kept order never credited is dropped (nothing was awarded); any other as Orders.refund."""
        owner_raw = await self.redis.get(keys.order_owner(order_id))
        owner = owner_raw.decode() if owner_raw else ""
        if owner.startswith("x:"):
            return "ALREADY_REFUNDED", 0
        customer_id = unattributed(owner)
        if customer_id is not None:
            moved = (await self._move_order(keys=[keys.order_owner(order_id)], args=[owner, f"x:{customer_id}"])
                     ).decode()
            if moved == f"x:{customer_id}":
                await self.redis.hdel(keys.customer_orders(customer_id), order_id)
                await self.counters.count("orders_unattributed_dropped")
                return "OK", 0
        return await self.orders.refund(order_id)
