"""Account link (LINE's): the shop's server trades a link token for a nonce, and members looked up by the shop's
own customer id.

    POST /api/v1/account-links {"link_token", "customer_id"} -> 201 {"nonce", "redirect_url"}
    GET  /api/v1/customers/{customer_id}                      -> the member's view, as GET /api/v1/members/{id}

Call the first from the shop's server, only after the customer logged in there: whoever holds a nonce for a
customer id links that customer to the LINE account that opens the redirect (README "Account link").
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

from aiohttp import web

from bot.services import Services
from bot.web.api.members import member_answer
from bot.web.http import ApiError, field, json_body
from rewards.errors import ProgramError

# the shop's customer id: printable ASCII without spaces or braces (braces would break the hash tag of the
# customer's keys, rewards/keys.py customer); fullmatch, so no newline slips in
CUSTOMER_ID = re.compile(r"[\x21-\x7a\x7c\x7e]{1,128}")
LINK_TOKEN = re.compile(r"[A-Za-z0-9._~-]{1,256}")  # LINE's link tokens are URL-safe text (32 characters today)
DIALOG = "https://access.line.me/dialog/bot/accountLink"
FIELDS = ("link_token", "customer_id")


def valid_customer_id(value: str) -> str:
    if not CUSTOMER_ID.fullmatch(value):
        raise ApiError(400, "INVALID_CUSTOMER_ID", "customer_id must be 1 to 128 printable ASCII characters "
                                                   "without spaces, { or }")
    return value


def redirect_url(link_token: str, nonce: str) -> str:
    """Where the shop sends its customer's browser: LINE's dialog, which links and sends us the event."""
    return f"{DIALOG}?{urlencode({'linkToken': link_token, 'nonce': nonce})}"


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services(request: web.Request) -> Services:
        return request.app[services_key]

    async def create(request: web.Request) -> web.Response:
        body = await json_body(request, FIELDS)
        link_token = field(body, "link_token", str)
        if not LINK_TOKEN.fullmatch(link_token):
            raise ApiError(400, "INVALID_LINK_TOKEN", "link_token must be the linkToken the shop's page was opened "
                                                      "with")
        customer_id = valid_customer_id(field(body, "customer_id", str))
        try:
            nonce = await services(request).program.links.create_nonce(link_token, customer_id)
        except ProgramError as exc:  # not a token we issued, or older than its 10 minutes: a bad request
            raise ApiError(400, exc.code, exc.message) from exc
        return web.json_response({"nonce": nonce, "redirect_url": redirect_url(link_token, nonce)}, status=201)

    async def customer(request: web.Request) -> web.Response:
        customer_id = valid_customer_id(request.match_info["customer_id"])
        s = services(request)
        user_id = await s.program.links.user_of(customer_id)
        answer = await member_answer(s, user_id) if user_id else None
        if answer is None:
            raise ApiError(404, "UNKNOWN_CUSTOMER", "no LINE user is linked to that customer")
        answer["customer_id"] = customer_id
        return web.json_response(answer)

    app.router.add_post("/api/v1/account-links", create)
    app.router.add_get("/api/v1/customers/{customer_id}", customer)
