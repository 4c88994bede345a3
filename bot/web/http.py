"""What every admin API handler shares: one error type, reading and checking the request, the middlewares,
and what every response of the app carries (security_headers).

The contract: bearer ADMIN_TOKEN on /api/*, JSON in and out, errors as {"error": {"code", "message"}} with a
4xx status. A handler refuses a request by raising ApiError (or a ProgramError from the program);
auth_middleware answers it in that shape, so no handler builds an error response itself. Likewise no handler
catches Redis errors: unavailable_middleware answers them 503 (JSON on /api/*, a page elsewhere).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from redis.exceptions import RedisError

from bot.services import Services
from bot.web.pages.render import WAIT, page_language, render, style_sources
from rewards.errors import ProgramError

log = logging.getLogger(__name__)

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
MAX_PAGE = 500
# exactly "Bearer <token>": one space, a token of visible ASCII (RFC 6750's b64token and more), nothing else
BEARER = re.compile(r"Bearer ([\x21-\x7e]+)")
# a JSON body nested deeper than this is refused before anything reads it: far deeper than any request we take
# (a Flex bubble in a broadcast, LINE's webhook events) and far from Python's recursion limit (about 1,000)
MAX_JSON_DEPTH = 64
DIGITS = re.compile(r"[0-9]{1,18}")  # a numeric query parameter: ASCII digits only, never thousands of them

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A request refused: answered as {"error": {"code", "message"}} with `status`."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


# ---- middlewares ---------------------------------------------------------------------------------
RETRY_AFTER_SECONDS = 5  # what a 503 for Redis not answering tells the client


class RedisOutage:
    """How the web side reports Redis not answering: one error line when it starts (with the error, never a
    traceback: the cause is known), then at most one every `every` seconds while it lasts, saying how many
    requests were answered 503 meanwhile, and one line when /healthz finds Redis answering again."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self._reported_at: float | None = None
        self._refused = 0  # requests answered 503 since the last line

    def failed(self, where: str, exc: BaseException) -> None:
        self._refused += 1
        now = self.clock()
        if self._reported_at is not None and now - self._reported_at < self.every:
            return
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._reported_at is None:
            log.error("Redis does not answer (%s, at %s); answering 503 until it does", cause, where)
        else:
            log.error("Redis still does not answer (%s, at %s); %d requests answered 503 in the last %.0f s",
                      cause, where, self._refused, now - self._reported_at)
        self._reported_at, self._refused = now, 0

    def answered(self) -> None:
        if self._reported_at is not None:
            log.warning("Redis answers again (%d requests answered 503 since the last report)", self._refused)
            self._reported_at, self._refused = None, 0


OUTAGE = web.AppKey("redis_outage", RedisOutage)


def unavailable_middleware(services_key: web.AppKey[Services]) -> Any:
    """Redis not answering, anywhere below: 503 with Retry-After, as the contract's JSON error on /api/* and as
    a kind page (the viewer's language, Japanese first) elsewhere; reported through the app's RedisOutage.
    The webhook and /healthz answer their own 503s."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except RedisError as exc:
            request.app[OUTAGE].failed(f"{request.method} {request.path}", exc)
            if request.writer.output_size:  # a streamed answer already begun: nothing to replace it with
                raise
            if request.path.startswith("/api/"):
                response = error_response(503, "UNAVAILABLE", "the service is briefly unavailable (its database "
                                          f"does not answer); try again in {RETRY_AFTER_SECONDS} seconds")
            else:
                texts = request.app[services_key].texts
                lang = page_language(request, texts)
                page = render("notice.html", lang=lang, icon=WAIT, title=texts.get(lang, "page_unavailable_title"),
                              body=texts.get(lang, "page_unavailable_body"))
                response = web.Response(text=page, status=503, content_type="text/html")
            response.headers.update({"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"})
            return response

    return middleware


def security_headers(public_base_url: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """For app.on_response_prepare, so it reaches every response the app sends, aiohttp's own 404/405/413/500
    included: no Server header (it named Python's and aiohttp's versions); nosniff and no referrer on all;
    and on HTML pages a strict Content-Security-Policy (nothing but the templates' own inline styles, by
    hash, and images from this server; no scripts, forms, base or framing) and no-store unless the page set
    its own Cache-Control. A header the handler set itself is kept."""
    public = urlsplit(public_base_url)
    policy = "; ".join([
        "default-src 'none'",
        "style-src " + " ".join(style_sources()),
        f"img-src 'self' {public.scheme}://{public.netloc}",  # the coupon page's QR is an absolute URL
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
    every = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    pages = {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "Cache-Control": "no-store"}

    async def prepare(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers.popall("Server", None)
        for name, value in every.items():
            headers.setdefault(name, value)
        if response.content_type == "text/html":
            for name, value in pages.items():
                headers.setdefault(name, value)

    return prepare


def auth_middleware(services_key: web.AppKey[Services]) -> Any:
    """Bearer ADMIN_TOKEN on /api/* (compared in constant time), and ApiError / ProgramError as the JSON error."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        bearer = BEARER.fullmatch(request.headers.get("Authorization", ""))
        if bearer is None:
            log.info("admin API call without a well-formed bearer token from %s: %s %s", request.remote,
                     request.method, request.path)
            return error_response(401, "UNAUTHENTICATED", "send Authorization: Bearer <ADMIN_TOKEN>")
        expected = request.app[services_key].settings.admin_token
        if not expected:
            return error_response(403, "ADMIN_API_DISABLED",
                                  "ADMIN_TOKEN is not set, so the admin API refuses every call")
        if not hmac.compare_digest(bearer.group(1).encode(), expected.encode()):
            log.warning("admin API call with a wrong token from %s: %s %s", request.remote, request.method,
                        request.path)
            return error_response(403, "FORBIDDEN", "the bearer token is wrong")
        try:
            return await handler(request)
        except ApiError as exc:
            log.info("admin API refused %s %s: %s", request.method, request.path, exc.message)
            return error_response(exc.status, exc.code, exc.message)
        except ProgramError as exc:
            status = 404 if exc.code.startswith("UNKNOWN_") else 409
            log.info("admin API refused %s %s: %s", request.method, request.path, exc.code)
            return error_response(status, exc.code, exc.message)

    return middleware


# request bodies read as a stream by their handler, with its own deadline per chunk and size limit (CSV imports)
STREAMED_PREFIX = "/api/v1/imports/"


def body_timeout_middleware(seconds: float, max_size: int) -> Any:
    """Slow bodies: a client that trickles its request body (slowloris-style) is cut off, not waited for.

    aiohttp itself waits for a body as long as the client keeps the connection open. This reads the whole
    body of every request that has one within `seconds` (the body is then cached, so the handlers' own
    `read()` / `json()` return at once) and answers 408 otherwise. Other requests are never blocked by a
    slow one: each connection waits on its own.
    """
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists and not request.path.startswith(STREAMED_PREFIX):
            try:
                await asyncio.wait_for(request.read(), seconds)
            except asyncio.TimeoutError:
                log.warning("request body from %s not received within %.1fs: %s %s, cut off",
                            request.remote, seconds, request.method, request.path)
                response = error_response(408, "BODY_TIMEOUT", f"the body did not arrive within {seconds:g} s")
                response.force_close()  # the rest of the trickle is not worth reading
                return response
            except web.HTTPRequestEntityTooLarge:
                log.warning("request body from %s over %d bytes: %s %s", request.remote,
                            max_size, request.method, request.path)
                response = error_response(413, "BODY_TOO_LARGE", f"request bodies are at most {max_size} bytes")
                response.force_close()
                return response
        return await handler(request)

    return middleware


# ---- the request ---------------------------------------------------------------------------------
class JsonRefused(ValueError):
    """A body that is not JSON (`too_deep` False), or nests deeper than MAX_JSON_DEPTH (`too_deep` True)."""

    def __init__(self, message: str, *, too_deep: bool = False):
        super().__init__(message)
        self.too_deep = too_deep


def loads_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads of UTF-8 JSON, refusing (JsonRefused) what is not that and what nests deeper than `max_depth`.

    Deep nesting is what crashes the parser (RecursionError near 1,000 levels) or whatever walks the value
    later (validation, json.dumps into Redis or the audit log), so it is refused here, once, for every caller.
    A body with at most `max_depth` brackets in all cannot nest deeper: the usual small body is never walked.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text)
    except RecursionError as exc:
        raise JsonRefused(f"the JSON nests deeper than {max_depth} levels", too_deep=True) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JsonRefused("the body is not JSON") from exc
    if text.count("[") + text.count("{") > max_depth and _depth_over(value, max_depth):
        raise JsonRefused(f"the JSON nests deeper than {max_depth} levels", too_deep=True)
    return value


def _depth_over(value: Any, limit: int) -> bool:
    """Whether an array or object lies more than `limit` levels deep (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


async def json_body(request: web.Request, fields: Collection[str]) -> dict[str, Any]:
    """The body as a JSON object with no field but these (400 INVALID_JSON / INVALID_BODY / UNKNOWN_FIELD).

    Unknown fields are refused, not ignored: a misspelt "segmnet" would otherwise broadcast to everyone, and a
    stray field would be written into the audit log as if it meant something."""
    body = _object(await request.read())
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, "UNKNOWN_FIELD", f"unknown field(s): {', '.join(unknown)}; "
                                             f"this call takes {', '.join(sorted(fields))}")
    return body


async def optional_body(request: web.Request, allowed: dict[str, type]) -> dict[str, Any]:
    """A body that may be absent; when present: a JSON object with only these fields, of these types."""
    raw = await request.read()
    if not raw.strip():
        return {}
    body = _object(raw)
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "UNKNOWN_FIELD", f"unknown field(s): {', '.join(unknown)}")
    for name, kind in allowed.items():
        if name in body and not isinstance(body[name], kind):
            raise ApiError(400, "INVALID_FIELD", f"{name} must be a {kind.__name__}")
    return body


def _object(raw: bytes) -> dict[str, Any]:
    try:
        body = loads_json(raw)
    except JsonRefused as exc:
        raise ApiError(400, "INVALID_JSON", str(exc)) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_BODY", "the body must be a JSON object")
    return body


def field(body: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    """body[name] of type `kind` (int or str; a bool is no int); None when absent and not required."""
    value = body.get(name)
    if value is None and not required:
        return None
    if value is None:
        raise ApiError(400, "MISSING_FIELD", f"{name} is required")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, "INVALID_FIELD", f"{name} must be {'an integer' if kind is int else 'a string'}")
    return value


def valid_user_id(value: str) -> str:
    if not USER_ID.fullmatch(value):
        raise ApiError(400, "INVALID_USER_ID", "user_id must be a LINE user id: U followed by 32 hex digits")
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """?name= as a whole number from low to high: ASCII digits only (not "²", "１０" or 5,000 digits), else 400
    INVALID_{NAME}. Every numeric query parameter of the admin API goes through here."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(400, f"INVALID_{name.upper()}", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def query_str(request: web.Request, name: str, *, required: bool = False, max_length: int = 200,
              choices: Iterable[str] | None = None) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw.strip() == "":
        if required:
            raise ApiError(400, "MISSING_PARAMETER", f"the query parameter {name} is required")
        return None
    raw = raw.strip()
    if len(raw) > max_length:
        raise ApiError(400, f"INVALID_{name.upper()}", f"{name} must be at most {max_length} characters")
    allowed = list(choices) if choices is not None else None
    if allowed is not None and raw not in allowed:
        raise ApiError(400, f"INVALID_{name.upper()}", f"{name} must be one of {', '.join(allowed)}")
    return raw


def page(request: web.Request, default: int = 50) -> tuple[int, int]:
    """?offset=&limit= as (offset, limit)."""
    return query_int(request, "offset", 0, 0, 10**9), query_int(request, "limit", default, 1, MAX_PAGE)


# ---- the answer ----------------------------------------------------------------------------------
def shop_time(services: Services, at_ms: int | str | None) -> str | None:
    """A stored epoch-milliseconds time as ISO 8601 in the shop's time zone; None when unset (0 or empty)."""
    if not at_ms:
        return None
    return datetime.fromtimestamp(int(at_ms) / 1000, services.program.rules.timezone).isoformat(timespec="seconds")
