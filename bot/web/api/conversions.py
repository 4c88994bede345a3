"""Purchases, refunds and custom events: what earns (or takes back) points from outside the chat."""
from __future__ import annotations

import re
from datetime import timedelta

from aiohttp import web

from bot import notices
from bot.services import Services
from bot.web.api.account_links import valid_customer_id
from bot.web.http import ApiError, field, json_body, valid_user_id
from rewards import times

ORDER_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces (fullmatch: "$" would let "\n" in)
MAX_AMOUNT_YEN = 100_000_000
# occurred_at: an order of the last year (a shop catching up on its history; older ones would earn points already
# expired under the default 12 months, and are for an import of opening balances), up to a few minutes ahead
# (the shop's clock running fast). Outside it: 400 before anything is written.
ORDER_MAX_AGE = timedelta(days=366)
CONVERSION_FIELDS = ("order_id", "user_id", "customer_id", "amount", "occurred_at", "fingerprint")
EVENT_FIELDS = ("user_id", "name", "event_id", "value")
MAX_EVENT_VALUE = 1_000_000  # a rating, a score: what [prompts] event_min_value compares


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def conversions(request: web.Request) -> web.Response:
        body = await json_body(request, CONVERSION_FIELDS)
        order_id = field(body, "order_id", str)
        if not ORDER_ID.fullmatch(order_id):
            raise ApiError(400, "INVALID_ORDER_ID", "order_id must be 1 to 128 printable ASCII characters")
        if ("user_id" in body) == ("customer_id" in body):
            raise ApiError(400, "MISSING_FIELD" if "user_id" not in body else "INVALID_BODY",
                           "send either user_id (a LINE user) or customer_id (the shop's customer), not both")
        customer_id = valid_customer_id(field(body, "customer_id", str)) if "customer_id" in body else None
        user_id = valid_user_id(field(body, "user_id", str)) if customer_id is None else ""
        amount = field(body, "amount", int)
        if not 0 <= amount <= MAX_AMOUNT_YEN:
            raise ApiError(400, "INVALID_AMOUNT", f"amount must be yen between 0 and {MAX_AMOUNT_YEN}")
        occurred = field(body, "occurred_at", str, required=False)
        s = services(request)
        at_ms = None
        if occurred is not None:
            try:
                at_ms = times.within(occurred, s.program.rules.timezone, s.program.now_ms(), past=ORDER_MAX_AGE,
                                     future=times.CLOCK_SKEW)
            except times.TimeRefused as exc:
                raise ApiError(400, "INVALID_OCCURRED_AT", f"occurred_at {exc}") from exc
        fingerprint = field(body, "fingerprint", str, required=False)
        if fingerprint is not None and not ORDER_ID.fullmatch(fingerprint):
            raise ApiError(400, "INVALID_FINGERPRINT", "fingerprint must be 1 to 128 printable ASCII characters "
                                                       "(send a hash, never the address or card itself)")
        if customer_id is not None:  # the shop's own id: the linked member's order, or kept until they link
            by_customer = await s.program.links.record_customer_purchase(order_id, customer_id, amount, at_ms,
                                                                         fingerprint)
            if by_customer.purchase is None or by_customer.user_id is None:
                return web.json_response({"order_id": order_id, "status": "unattributed"}, status=202)
            purchase, user_id = by_customer.purchase, by_customer.user_id
        else:
            purchase = await s.program.record_purchase(order_id, user_id, amount, at_ms, fingerprint)
        await notices.after_purchase(s, purchase, user_id, order_id)
        answer = purchase.answer
        referral = answer.get("referral") or None
        return web.json_response({
            "order_id": answer["order_id"], "points_awarded": answer["points_awarded"],
            "referral": {"status": referral["status"]} if referral else None})

    async def refund(request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        outcome, reversed_points = await services(request).program.refund(order_id)
        await notices.after_refund(services(request), order_id)  # a referral it voided: outbound webhooks
        return web.json_response({"order_id": order_id, "refunded": outcome == "OK",
                                  "already_refunded": outcome == "ALREADY_REFUNDED",
                                  "points_reversed": reversed_points})

    async def custom_event(request: web.Request) -> web.Response:
        """POST /api/v1/events {user_id, name, event_id, value?}: a review (value: its stars), a share… as the rules
        name them."""
        body = await json_body(request, EVENT_FIELDS)
        user_id = valid_user_id(field(body, "user_id", str))
        name = field(body, "name", str)
        event_id = field(body, "event_id", str)
        if not ORDER_ID.fullmatch(event_id):
            raise ApiError(400, "INVALID_EVENT_ID", "event_id must be 1 to 128 printable ASCII characters")
        value = field(body, "value", int, required=False)
        if value is not None and not 0 <= value <= MAX_EVENT_VALUE:
            raise ApiError(400, "INVALID_VALUE", f"value must be a whole number between 0 and {MAX_EVENT_VALUE}")
        applied, points = await services(request).program.custom_event(user_id, name, event_id)
        await notices.after_custom_event(services(request), user_id, name, event_id, value, new=applied)
        return web.json_response({"user_id": user_id, "name": name, "event_id": event_id, "applied": applied,
                                  "points_awarded": points})

    app.router.add_post("/api/v1/conversions", conversions)
    app.router.add_post("/api/v1/conversions/{order_id}/refund", refund)
    app.router.add_post("/api/v1/events", custom_event)
