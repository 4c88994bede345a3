"""A stand-in for Shopify's GraphQL Admin API, as much of it as Shokai uses: `discountCodeBasicCreate`.

It checks each request the way Shopify does: the access token (401), the API version in the path, a JSON body
with `query` and `variables`, the mutation's DiscountCodeBasicInput (fields, types, what is required when
creating), and the cost limit: a leaky bucket per app and store (the standard plan's 100 points a second
restored, 2,000 at most), every answer carrying `extensions.cost`, a call that does not fit answered THROTTLED
with nothing done. A code already in the store is refused with the userError Shopify documents (TAKEN on
["basicCodeDiscount", "code"]). Tests make it fail: `fail_next` takes "500", "503", "timeout" (no answer
within the client's patience) or "lost" (the code is made, then the answer is a 500, as when a connection
drops after Shopify did the work).
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

VERSIONS = ("2025-07", "2025-10", "2026-01")  # stable versions the stand-in answers for
MUTATION_COST = 10
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"

_INPUT_FIELDS: dict[str, type | tuple[type, ...]] = {"appliesOncePerCustomer": bool, "code": str, "combinesWith": dict, "context": dict,
                 "customerGets": dict, "customerSelection": dict, "endsAt": (str, type(None)),
                 "minimumRequirement": (dict, type(None)), "recurringCycleLimit": int, "startsAt": str, "title": str,
                 "usageLimit": (int, type(None))}
_CUSTOMER_GID = re.compile(r"^gid://shopify/Customer/[0-9]+$")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


@dataclass
class Discount:
    id: str
    code: str
    input: dict[str, Any]


@dataclass
class ShopifyAdminStandIn:
    token: str
    maximum: float = 2000.0
    restore_rate: float = 100.0
    clock: Callable[[], float] = time.monotonic
    fail_next: list[str] = field(default_factory=list)
    timeout_seconds: float = 30.0  # how long a "timeout" failure holds the request
    discounts: dict[str, Discount] = field(default_factory=dict)  # upper-cased code -> discount
    calls: list[dict[str, Any]] = field(default_factory=list)  # every request: status and what it was
    lowest: float = 0.0  # the least the bucket ever held after a call it let through (never below 0)

    def __post_init__(self) -> None:
        self._available = self.maximum
        self._at = self.clock()
        self.lowest = self.maximum
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ---- serving ----------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/admin/api/{version}/graphql.json", self._graphql)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.url = f"http://{host}:{sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- the bucket -------------------------------------------------------------------------------------------
    def available(self) -> float:
        now = self.clock()
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now
        return self._available

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                         "throttleStatus": {"maximumAvailable": self.maximum,
                                            "currentlyAvailable": int(self.available()),
                                            "restoreRate": self.restore_rate}}}

    # ---- the endpoint -----------------------------------------------------------------------------------------
    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        record: dict[str, Any] = {"version": request.match_info["version"]}
        self.calls.append(record)
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            record["status"] = 401
            return web.json_response({"errors": INVALID_TOKEN}, status=401)
        if request.match_info["version"] not in VERSIONS:
            record["status"] = 404
            return web.json_response({"errors": "Not Found"}, status=404)
        if request.content_type != "application/json":
            record["status"] = 415
            return web.json_response({"errors": "Content-Type must be application/json"}, status=415)
        try:
            body = json.loads(await request.read())
        except ValueError:
            record["status"] = 400
            return web.json_response({"errors": {"query": "Required parameter missing or invalid"}}, status=400)
        query, variables = body.get("query"), body.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            record["status"] = 400
            return web.json_response({"errors": {"query": "Required parameter missing or invalid"}}, status=400)
        if not re.search(r"\bmutation\b[^{]*\{\s*discountCodeBasicCreate\s*\(\s*basicCodeDiscount\s*:\s*\$basicCodeDiscount",
                         query) or "$basicCodeDiscount: DiscountCodeBasicInput!" not in query:
            record["status"] = 200
            return web.json_response({"errors": [{"message": "the stand-in serves discountCodeBasicCreate only",
                                                  "extensions": {"code": "undefinedField"}}]})
        record["op"] = "discountCodeBasicCreate"
        if self.available() < MUTATION_COST:
            record["status"], record["throttled"] = 200, True
            return web.json_response({"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": self._cost(MUTATION_COST, None)})
        failure = self.fail_next.pop(0) if self.fail_next else None
        if failure == "timeout":
            record["status"] = "timeout"
            await asyncio.sleep(self.timeout_seconds)
            return web.json_response({"errors": "timed out"}, status=504)
        if failure in ("500", "503"):
            record["status"] = int(failure)
            return web.json_response({"errors": "Internal Server Error"}, status=int(failure))
        self._available -= MUTATION_COST
        self.lowest = min(self.lowest, self._available)
        problem = _check_input(variables.get("basicCodeDiscount"))
        if problem:
            record["status"], record["invalid"] = 200, problem
            return web.json_response({"errors": [{"message": f"Variable $basicCodeDiscount of type "
                                                  f"DiscountCodeBasicInput! was provided invalid value: {problem}",
                                                  "extensions": {"code": "INVALID_VARIABLE"}}],
                                      "extensions": self._cost(MUTATION_COST, None)})
        given = variables["basicCodeDiscount"]
        record["status"], record["code"] = 200, given["code"]
        user_errors = self._user_errors(given)
        node = None
        if not user_errors:
            discount = Discount(id=f"gid://shopify/DiscountCodeNode/{len(self.discounts) + 1}", code=given["code"],
                                input=given)
            self.discounts[given["code"].upper()] = discount
            node = {"id": discount.id}
        if failure == "lost":  # made, but the answer never arrives whole
            record["status"] = 500
            return web.json_response({"errors": "Internal Server Error"}, status=500)
        return web.json_response({"data": {"discountCodeBasicCreate": {"codeDiscountNode": node,
                                                                       "userErrors": user_errors}},
                                  "extensions": self._cost(MUTATION_COST, MUTATION_COST)})

    def _user_errors(self, given: dict[str, Any]) -> list[dict[str, Any]]:
        """What Shopify refuses with userErrors (the input was well-typed, the values are not acceptable)."""
        def error(path: str, code: str, message: str) -> dict[str, Any]:
            return {"field": ["basicCodeDiscount", path], "code": code, "message": message}
        if given["code"].upper() in self.discounts:
            return [error("code", "TAKEN", "Code must be unique. Please try a different code.")]
        if not given["code"].strip() or len(given["code"]) > 255:
            return [error("code", "TOO_LONG" if given["code"].strip() else "BLANK", "Code is invalid")]
        if given.get("endsAt") and _time(given["endsAt"]) <= _time(given["startsAt"]):
            return [error("endsAt", "END_DATE_BEFORE_START_DATE", "Ends at needs to be after starts_at")]
        if given.get("usageLimit") is not None and given["usageLimit"] < 1:
            return [error("usageLimit", "GREATER_THAN", "Usage limit must be greater than 0")]
        return []


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _check_input(given: Any) -> str | None:
    """DiscountCodeBasicInput as the schema types it; None when it is well formed."""
    if not isinstance(given, dict):
        return "Expected value to not be null"
    for name, value in given.items():
        if name not in _INPUT_FIELDS:
            return f"Field is not defined on DiscountCodeBasicInput: {name}"
        if not isinstance(value, _INPUT_FIELDS[name]) or (isinstance(value, bool) and _INPUT_FIELDS[name] is int):
            return f"{name}: wrong type"
    for required in ("code", "title", "startsAt", "customerGets"):
        if required not in given:
            return f"{required}: required when creating"
    if ("context" in given) == ("customerSelection" in given):
        return "give one of context or customerSelection (deprecated)"
    for name in ("startsAt", "endsAt"):
        if given.get(name):
            try:
                _time(given[name])
            except ValueError:
                return f"{name}: not an ISO 8601 DateTime"
    return _check_context(given.get("context")) or _check_gets(given["customerGets"]) or _check_minimum(
        given.get("minimumRequirement"))


def _check_context(context: Any) -> str | None:
    if context is None:
        return None
    if set(context) - {"all", "customers", "customerSegments"} or len(context) != 1:
        return "context: give exactly one of all, customers, customerSegments"
    if "all" in context and context["all"] != "ALL":
        return "context.all: expected DiscountBuyerSelection ALL"
    if "customers" in context:
        added = context["customers"].get("add") if isinstance(context["customers"], dict) else None
        if not isinstance(added, list) or not all(isinstance(c, str) and _CUSTOMER_GID.match(c) for c in added):
            return "context.customers.add: expected [ID!] of gid://shopify/Customer/…"
    return None


def _check_gets(gets: dict[str, Any]) -> str | None:
    value, items = gets.get("value"), gets.get("items")
    if not isinstance(value, dict) or len(value) != 1:
        return "customerGets.value: give exactly one of percentage, discountAmount, discountOnQuantity"
    if "percentage" in value:
        p = value["percentage"]
        if not isinstance(p, int | float) or isinstance(p, bool) or not 0 < p <= 1:
            return "customerGets.value.percentage: a Float from 0 to 1"
    elif "discountAmount" in value:
        amount = value["discountAmount"]
        if (not isinstance(amount, dict) or not isinstance(amount.get("amount"), str)
                or not _DECIMAL.match(amount["amount"]) or not isinstance(amount.get("appliesOnEachItem"), bool)):
            return "customerGets.value.discountAmount: {amount: Decimal, appliesOnEachItem: Boolean}"
    else:
        return "customerGets.value: unsupported by the stand-in"
    if items != {"all": True} and not (isinstance(items, dict) and set(items) <= {"products", "collections"}):
        return "customerGets.items: {all: true}, products or collections"
    return None


def _check_minimum(minimum: Any) -> str | None:
    if minimum is None:
        return None
    subtotal = minimum.get("subtotal") if isinstance(minimum, dict) else None
    if not isinstance(subtotal, dict) or not _DECIMAL.match(str(subtotal.get("greaterThanOrEqualToSubtotal", ""))):
        return "minimumRequirement.subtotal.greaterThanOrEqualToSubtotal: a Decimal"
    return None
