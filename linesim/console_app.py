"""The simulator console's web app: the page, its static files, and the JSON/SSE routes the page calls, over
one `Console` (linesim/console.py)."""
from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from . import shop
from .console import RENDERER, RENDERER_FILES, SSE_KEEPALIVE_SECONDS, STATIC, Console, ConsoleError, Customer
from .platform import Platform

CONSOLE_KEY = web.AppKey("console", Console)
SHOP_PATH = "/shop/link"  # the stand-in shop's login page: SHOP_LINK_URL in dev mode (linesim/shop.py)


# ---- routes -----------------------------------------------------------------------------
def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        raise ConsoleError(400, "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise ConsoleError(400, "the body must be a JSON object")
    return body


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConsoleError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _is_local(hostname: str | None, also: frozenset[str]) -> bool:
    """localhost, a loopback address, or a host the console was told it is served on."""
    if not hostname:
        return False
    hostname = hostname.lower().rstrip(".")
    if hostname == "localhost" or hostname.endswith(".localhost") or hostname in also:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str | None:
    """The name in a Host header ("127.0.0.1:8080", "[::1]:8080", "localhost"), without its port."""
    try:
        return urlsplit(f"//{host}").hostname
    except ValueError:
        return None


def _origin_name(origin: str) -> str | None:
    """The host of an Origin header ("http://127.0.0.1:8080"); None for "null" or anything not http(s)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    return parts.hostname if parts.scheme in ("http", "https") else None


def local_only(hosts: Iterable[str] = ()) -> Any:
    """The console drives a bot with an admin token: only pages it serves itself may drive it.

    A web page the developer opens elsewhere could otherwise POST to it (a form or a "simple" fetch needs no
    CORS preflight) and add customers or report purchases; a DNS-rebinding page could even read it. So:
    the Host must be loopback (or a host the console was started on), an Origin, when the browser sends one,
    must be too, and whatever changes state must come as JSON, which another site cannot send without a
    preflight that this app never answers."""
    also = frozenset(h.lower() for h in hosts if h and h not in ("0.0.0.0", "::"))

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if not _is_local(_host_name(host), also):
            return web.json_response({"error": "the console answers only on a loopback address"}, status=403)
        origin = request.headers.get("Origin")
        if origin is not None and not _is_local(_origin_name(origin), also):
            return web.json_response({"error": "requests from other sites are refused"}, status=403)
        if request.method not in SAFE_METHODS and request.content_type != "application/json":
            return web.json_response({"error": "send JSON (Content-Type: application/json)"}, status=415)
        return await handler(request)

    return guard


def console_app(platform: Platform, *, bot_url: str, public_base_url: str, admin_token: str,
                hosts: Iterable[str] = (), liff_id: str | None = None,
                liff_endpoint: str | None = None, shop_link_url: str | None = None,
                shopify_secret: str | None = None) -> web.Application:
    """The console as an aiohttp app; serve it on its own port next to the bot. It answers loopback requests
    only, and `hosts` (the address `dev` was told to listen on, when not loopback). With `liff_id`, LIFF URLs
    of that app open `liff_endpoint` (a page of the bot's) in the phone's LIFF browser; `shop_link_url` is
    the stand-in shop's login page (shop.py)."""
    console = Console(platform, bot_url=bot_url, public_base_url=public_base_url, admin_token=admin_token,
                      liff_id=liff_id, liff_endpoint=liff_endpoint, shop_link_url=shop_link_url,
                      shopify_secret=shopify_secret)
    app = web.Application(middlewares=[local_only(hosts), _errors])
    app[CONSOLE_KEY] = console
    app.cleanup_ctx.append(console.lifecycle)
    app.on_shutdown.append(console.close_streams)

    def renderer_file(name: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(RENDERER / name, headers={"Cache-Control": "no-store"})
        return handler

    async def index(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "console.html", headers={"Cache-Control": "no-store"})

    async def state(request: web.Request) -> web.Response:
        return web.json_response(console.state())

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        # snapshot and subscription in one step (no await between): nothing lost, nothing twice
        snapshot = json.dumps({"type": "snapshot", **console.state()}, ensure_ascii=False)
        queue = console.subscribe()
        try:
            await response.write(f"data: {snapshot}\n\n".encode())
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                await response.write(f"data: {item}\n\n".encode())
        except ConnectionResetError:
            pass  # the page went away
        finally:
            console.unsubscribe(queue)
        return response

    async def add_customer(request: web.Request) -> web.Response:
        body = await _json_body(request)
        customer = console.add_customer(str(body.get("name", "")), str(body.get("language", "ja")))
        return web.json_response(customer.summary(), status=201)

    def target(request: web.Request) -> Customer:
        return console.customer(request.match_info["uid"])

    async def transcript(request: web.Request) -> web.Response:
        return web.json_response(target(request).transcript)

    async def follow(request: web.Request) -> web.Response:
        return web.json_response(await console.follow(target(request)))

    async def block(request: web.Request) -> web.Response:
        return web.json_response(await console.block(target(request)))

    async def unblock(request: web.Request) -> web.Response:
        return web.json_response(await console.unblock(target(request)))

    async def text(request: web.Request) -> web.Response:
        customer = target(request)
        return web.json_response(await console.say(customer, str((await _json_body(request)).get("text", ""))))

    async def tap(request: web.Request) -> web.Response:
        customer = target(request)
        action = (await _json_body(request)).get("action")
        if not isinstance(action, dict):
            raise ConsoleError(400, "action must be a LINE action object")
        return web.json_response(await console.tap(customer, action, _origin(request)))

    async def open_link(request: web.Request) -> web.Response:
        customer = target(request)
        url = str((await _json_body(request)).get("url", ""))
        return web.json_response(await console.open_uri(customer, url, _origin(request)))

    async def scan(request: web.Request) -> web.Response:
        customer = target(request)
        body = await _json_body(request)
        links = [str(u) for u in body.get("links", []) if isinstance(u, str)]
        return web.json_response(await console.scan(customer, str(body.get("image_url", "")), links, _origin(request)))

    async def share(request: web.Request) -> web.Response:
        sender = target(request)
        body = await _json_body(request)
        return web.json_response(console.share(sender, console.customer(str(body.get("to", ""))), str(body.get("text", ""))))

    async def purchase(request: web.Request) -> web.Response:
        customer = target(request)
        body = await _json_body(request)
        amount = body.get("amount", 3000)
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= 100_000_000:
            raise ConsoleError(400, "amount must be a whole number of yen from 1 to 100,000,000")
        customer_id = body.get("customer_id") or None  # the shop's id instead of the LINE user (account link)
        if customer_id is not None and not isinstance(customer_id, str):
            raise ConsoleError(400, "customer_id must be a string")
        return web.json_response(await console.purchase(customer, amount, customer_id))

    async def shopify_order(request: web.Request) -> web.Response:
        customer = target(request)
        body = await _json_body(request)
        amount = body.get("amount", 3000)
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= 100_000_000:
            raise ConsoleError(400, "amount must be a whole number of yen from 1 to 100,000,000")
        customer_id, coupon = body.get("customer_id") or None, body.get("coupon") or None
        if not isinstance(customer_id, (str, type(None))) or not isinstance(coupon, (str, type(None))):
            raise ConsoleError(400, "customer_id and coupon are strings")
        return web.json_response(await console.shopify_order(customer, amount, customer_id, coupon))

    async def shop_page(request: web.Request) -> web.Response:
        """The stand-in shop's login page opened outside the phone (SHOP_LINK_URL in an ordinary browser)."""
        link_token = request.query.get("linkToken", "")
        return web.Response(text=shop.login_page(link_token, "ja", str(request.url.with_query(None)) + "/login"),
                            content_type="text/html")

    async def richmenu(request: web.Request) -> web.Response:
        return web.json_response({"menu": console.richmenu(target(request))})

    async def tap_richmenu(request: web.Request) -> web.Response:
        customer = target(request)
        try:
            index = int(request.match_info["index"])
        except ValueError as exc:
            raise ConsoleError(400, "the area is a number") from exc
        return web.json_response(await console.tap_richmenu(customer, index))

    async def richmenu_image(request: web.Request) -> web.Response:
        found = platform.richmenus.images.get(request.match_info["id"])
        if found is None:
            raise ConsoleError(404, "no image for that rich menu")
        return web.Response(body=found[0], content_type=found[1], headers={"Cache-Control": "max-age=3600"})

    async def proxy(request: web.Request) -> web.Response:
        # the raw (still percent-encoded) path, so the bot sees exactly what a phone would ask for
        return await console.proxy(request.rel_url.raw_path_qs[len("/bot"):])

    # the LIFF browser: the page and its calls, as this customer's LINE sends them (linesim/static/liff-sdk.js)
    async def phone(request: web.Request) -> web.Response:
        customer = target(request)
        path_qs = request.rel_url.raw_path_qs[len("/phone/") + len(request.match_info["uid"]):]
        body = await request.read() if request.method == "POST" else None
        return await console.phone_request(customer, request.method, path_qs, body,
                                           request.content_type if body is not None else None)

    async def liff_login(request: web.Request) -> web.Response:
        body = await _json_body(request)
        return web.json_response(console.liff_login(target(request), str(body.get("liff_id", ""))))

    async def liff_friendship(request: web.Request) -> web.Response:
        return web.json_response({"friendFlag": target(request).state == "friend"})

    async def liff_request_friendship(request: web.Request) -> web.Response:
        return web.json_response(await console.liff_request_friendship(target(request)))

    async def liff_share(request: web.Request) -> web.Response:
        sender = target(request)
        body = await _json_body(request)
        to = body.get("to")
        if not isinstance(to, list) or not all(isinstance(u, str) for u in to):
            raise ConsoleError(400, "to must be a list of customer ids")
        return web.json_response(console.liff_share(sender, to, body.get("messages")))

    r = app.router
    r.add_get("/", index)
    r.add_route("GET", "/phone/{uid}/{tail:.*}", phone)
    r.add_route("POST", "/phone/{uid}/{tail:.*}", phone)
    r.add_post("/api/customers/{uid}/liff/login", liff_login)
    r.add_post("/api/customers/{uid}/liff/friendship", liff_friendship)
    r.add_post("/api/customers/{uid}/liff/request-friendship", liff_request_friendship)
    r.add_post("/api/customers/{uid}/liff/share", liff_share)
    for name in RENDERER_FILES:  # the renderer the dashboard uses too: one file, from the bot package
        r.add_get(f"/static/{name}", renderer_file(name))
    r.add_static("/static/", STATIC)
    r.add_get("/api/state", state)
    r.add_get("/api/events", events)
    r.add_post("/api/customers", add_customer)
    r.add_get("/api/customers/{uid}/transcript", transcript)
    r.add_post("/api/customers/{uid}/follow", follow)
    r.add_post("/api/customers/{uid}/block", block)
    r.add_post("/api/customers/{uid}/unblock", unblock)
    r.add_post("/api/customers/{uid}/text", text)
    r.add_post("/api/customers/{uid}/tap", tap)
    r.add_post("/api/customers/{uid}/open", open_link)
    r.add_post("/api/customers/{uid}/scan", scan)
    r.add_post("/api/customers/{uid}/share", share)
    r.add_post("/api/customers/{uid}/purchase", purchase)
    r.add_post("/api/customers/{uid}/shopify-order", shopify_order)
    r.add_get("/api/customers/{uid}/richmenu", richmenu)
    r.add_post("/api/customers/{uid}/richmenu/{index}", tap_richmenu)
    r.add_get("/api/richmenus/{id}.img", richmenu_image)
    r.add_get("/bot/{tail:.*}", proxy)
    r.add_get(SHOP_PATH, shop_page)
    return app
