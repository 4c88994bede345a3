"""The simulator console: a web page standing in for the LINE app on customers' phones.

It drives the `Platform` (the only fake in the project) from a browser: virtual customers
follow, block, type and tap; every message the bot sends reaches their transcript through
`platform.listeners` and is streamed to the page as Server-Sent Events. Everything the console
does to the bot goes over real HTTP: signed webhooks (through the Platform), page fetches for
the in-console "phone browser", and the admin API for purchases.

Pages and images the bot links to live under `public_base_url` (what phones would use); the
console maps that prefix to `bot_url` (where the bot listens locally) whenever it fetches them.

    app = console_app(platform, bot_url="http://127.0.0.1:8000",
                      public_base_url="http://127.0.0.1:8000", admin_token="...")

The Platform must be started (`await platform.start()`) before the console sends anything.

A little over 400 lines: it is the one class that keeps every virtual phone's state; its web routes
(linesim/console_app.py) and its phone browser (linesim/phone.py) are already apart.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web

import bot
from bot.line import limits as line_limits
from bot.line.limits import DISPLAY_NAME_MAX

from . import shop
from .phone import (
    classify_uri,
    decode_qr,
    failure_text,
    image_document,
    page_document,
    plain_document,
    under,
    with_tap_script,
)
from .platform import Call, Platform, new_user_id
from .shopify import ShopifyStandIn
from .shopify import order_body as shopify_order_body

STATIC = Path(__file__).resolve().parent / "static"
# the LINE message renderer the console shares with the staff dashboard, served from the bot package
RENDERER = Path(bot.__file__).resolve().parent / "web" / "dashboard" / "static"
RENDERER_FILES = ("line-render.js", "line-render.css")
LANGUAGES = ("ja", "en")
ACCEPT_LANGUAGE = {"ja": "ja-JP,ja;q=0.9,en;q=0.5", "en": "en-US,en;q=0.9,ja;q=0.3"}
# LINE's in-app browser announces itself with " Line/<version>"; pages may look for it.
PHONE_USER_AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                    "(KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.0")
MESSAGE_ENDPOINTS = ("reply", "push", "multicast", "broadcast")
LOG_MAX = 500
REDIRECTS_MAX = 5
VIOLATION_POLL_SECONDS = 0.3
SSE_KEEPALIVE_SECONDS = 15.0


@dataclass
class Customer:
    """One virtual customer: a phone with LINE on it."""
    uid: str
    name: str
    language: str
    state: str = "new"  # new (never added the account) | friend | blocked
    transcript: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"uid": self.uid, "name": self.name, "language": self.language, "state": self.state}


class ConsoleError(Exception):
    """A request the console refuses; becomes a JSON error answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---- the console ------------------------------------------------------------------------
class Console:
    """State and behaviour behind the console's HTTP API (kept apart from routing so tests can
    reach it as `app[CONSOLE_KEY]`)."""

    def __init__(self, platform: Platform, *, bot_url: str, public_base_url: str, admin_token: str,
                 liff_id: str | None = None, liff_endpoint: str | None = None,
                 shop_link_url: str | None = None, shopify_secret: str | None = None) -> None:
        self.platform = platform
        # the Shopify store's stand-in (shopify.py), signing with the secret `dev` gave the bot; None: no store
        self.shopify = ShopifyStandIn(bot_url.rstrip("/") + "/webhooks/shopify", shopify_secret) \
            if shopify_secret else None
        # the LIFF app the phones know (its ID, and the endpoint URL its console registers): a LIFF URL with
        # this ID opens the endpoint in the phone's LIFF browser, with the stand-in SDK (static/liff-sdk.js)
        self.liff_id = liff_id
        self.liff_endpoint = liff_endpoint
        self.shop_link_url = shop_link_url.rstrip("/") if shop_link_url else None  # the stand-in shop (shop.py)
        self.bot_url = bot_url.rstrip("/")
        self.public_base_url = public_base_url.rstrip("/")
        self.admin_token = admin_token
        self.customers: dict[str, Customer] = {}
        self.log: list[dict] = []  # protocol violations and failed Messaging API calls
        self._seq = 0
        self._violations_seen = 0
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._session: ClientSession | None = None
        if not platform.bot_url:
            platform.bot_url = self.bot_url + "/callback"

    # -- lifecycle
    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self._session = ClientSession(timeout=ClientTimeout(total=30))
        self.platform.listeners.append(self.on_call)
        watcher = asyncio.create_task(self._watch_violations())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            with contextlib.suppress(ValueError):
                self.platform.listeners.remove(self.on_call)
            await self._session.close()

    async def close_streams(self, app: web.Application) -> None:
        for queue in self._subscribers:
            queue.put_nowait(None)

    @property
    def session(self) -> ClientSession:
        if self._session is None:
            raise RuntimeError("the console app is not running")
        return self._session

    # -- the live feed
    def state(self) -> dict:
        return {
            "config": {"public_base_url": self.public_base_url, "bot_url": self.bot_url,
                       "basic_id": self.platform.basic_id, "languages": list(LANGUAGES), "liff_id": self.liff_id},
            "customers": [dict(c.summary(), transcript=c.transcript) for c in self.customers.values()],
            "log": self.log,
        }

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._subscribers.discard(queue)

    def publish(self, event: dict) -> None:
        data = json.dumps(event, ensure_ascii=False)
        for queue in self._subscribers:
            queue.put_nowait(data)

    def add_entry(self, customer: Customer, kind: str, **data: Any) -> dict:
        self._seq += 1
        entry = {"seq": self._seq, "at": int(time.time() * 1000), "kind": kind, **data}
        customer.transcript.append(entry)
        self.publish({"type": "entry", "uid": customer.uid, "entry": entry})
        return entry

    def add_log(self, kind: str, text: str) -> None:
        item = {"at": int(time.time() * 1000), "kind": kind, "text": text}
        self.log.append(item)
        del self.log[:-LOG_MAX]
        self.publish({"type": "log", "item": item})

    def customer_changed(self, customer: Customer) -> None:
        self.publish({"type": "customer", "customer": customer.summary()})

    def on_call(self, call: Call) -> None:
        """Platform listener: every Messaging API call the bot made, as LINE recorded it."""
        if call.endpoint in MESSAGE_ENDPOINTS:
            if call.status == 200:
                for uid in call.to:
                    customer = self.customers.get(uid)
                    if customer is not None:
                        self.add_entry(customer, "bot", endpoint=call.endpoint,
                                       messages=call.body.get("messages", []))
            else:
                to = call.body.get("to")
                self.add_log("call", f"{call.endpoint} → HTTP {call.status}" + (f" (to {to})" if to else ""))
        elif call.endpoint == "loading" and call.status == 202:
            uid = call.body.get("chatId", "")
            if uid in self.customers:
                self.publish({"type": "typing", "uid": uid, "seconds": call.body.get("loadingSeconds", 5)})
        self._check_violations()

    def _check_violations(self) -> None:
        violations = self.platform.violations
        for text in violations[self._violations_seen:]:
            self.add_log("violation", text)
        self._violations_seen = len(violations)

    async def _watch_violations(self) -> None:
        # some violations (bad token, unknown endpoint) record no call, so also poll
        while True:
            await asyncio.sleep(VIOLATION_POLL_SECONDS)
            self._check_violations()

    # -- customers
    def customer(self, uid: str) -> Customer:
        customer = self.customers.get(uid)
        if customer is None:
            raise ConsoleError(404, f"no such customer: {uid}")
        return customer

    def add_customer(self, name: str, language: str) -> Customer:
        name = name.strip()
        if not 1 <= len(name) <= DISPLAY_NAME_MAX:
            raise ConsoleError(400, f"display name needs 1 to {DISPLAY_NAME_MAX} characters")
        if language not in LANGUAGES:
            raise ConsoleError(400, f"language must be one of {', '.join(LANGUAGES)}")
        uid = new_user_id()
        customer = Customer(uid, name, language)
        self.customers[uid] = customer
        self.platform.profiles[uid] = {"userId": uid, "displayName": name, "language": language}
        self.customer_changed(customer)
        return customer

    async def _deliver(self, customer: Customer, event: dict) -> int:
        """Sign and POST one event to the bot; a failure shows in the transcript and the log."""
        try:
            status = await self.platform.send(event)
        except (ClientError, TimeoutError) as exc:
            self.add_entry(customer, "system", text=f"ボットに届きません bot unreachable: {failure_text(exc)}")
            self.add_log("webhook", f"{event['type']} for {customer.name}: bot unreachable ({failure_text(exc)})")
            raise ConsoleError(502, f"the bot did not answer the webhook: {failure_text(exc)}") from exc
        if status != 200:
            self.add_entry(customer, "system", text=f"webhook → HTTP {status}")
            self.add_log("webhook", f"{event['type']} for {customer.name}: bot answered HTTP {status}")
        return status

    async def follow(self, customer: Customer) -> dict:
        """Add the account as a friend (or unblock it); a no-op for a friend, as in LINE."""
        if customer.state == "friend":
            return {"effect": "already_friend", "webhook_status": None}
        unblocked = customer.state == "blocked"
        event = self.platform.follow(customer.uid, unblocked=unblocked, language=customer.language)
        customer.state = "friend"
        self.customer_changed(customer)
        self.add_entry(customer, "system", text="ブロック解除しました unblocked" if unblocked
                       else "友だち追加しました added as a friend")
        return {"effect": "followed", "unblocked": unblocked, "webhook_status": await self._deliver(customer, event)}

    async def block(self, customer: Customer) -> dict:
        if customer.state != "friend":
            raise ConsoleError(409, "only a friend can block the account")
        event = self.platform.unfollow(customer.uid)
        customer.state = "blocked"
        self.customer_changed(customer)
        self.add_entry(customer, "system", text="ブロックしました blocked")
        return {"effect": "blocked", "webhook_status": await self._deliver(customer, event)}

    async def unblock(self, customer: Customer) -> dict:
        if customer.state != "blocked":
            raise ConsoleError(409, "the account is not blocked")
        return await self.follow(customer)

    def _can_talk(self, customer: Customer) -> None:
        # LINE lets anyone who has not blocked the account (friends or not) send it messages
        if customer.state == "blocked":
            raise ConsoleError(409, "this customer has blocked the account; unblock it first")

    async def say(self, customer: Customer, text: str) -> dict:
        if not text.strip():
            raise ConsoleError(400, "empty message")
        self._can_talk(customer)
        self.add_entry(customer, "me", text=text)
        return {"effect": "sent", "webhook_status": await self._deliver(customer, self.platform.text(customer.uid, text))}

    async def postback(self, customer: Customer, data: str, display_text: str | None) -> dict:
        self._can_talk(customer)
        self.add_entry(customer, "postback", data=data, displayText=display_text)
        event = self.platform.postback(customer.uid, data)
        return {"effect": "sent", "webhook_status": await self._deliver(customer, event)}

    async def tap(self, customer: Customer, action: dict, origin: str) -> dict:
        """A tap on a quick reply, a button or any other action object."""
        kind = action.get("type")
        if kind == "message":
            return await self.say(customer, str(action.get("text", "")))
        if kind == "postback":
            display = action.get("displayText")
            return await self.postback(customer, str(action.get("data", "")), str(display) if display else None)
        if kind == "datetimepicker":  # the value the customer picked (the console's prompt), else the initial
            mode = str(action.get("mode") or "datetime")
            value = str(action.get("chosen") or action.get("initial") or "")
            self._can_talk(customer)
            self.add_entry(customer, "postback", data=str(action.get("data", "")), displayText=value)
            event = self.platform.postback(customer.uid, str(action.get("data", "")), {mode: value})
            return {"effect": "sent", "webhook_status": await self._deliver(customer, event)}
        if kind == "uri":
            return await self.open_uri(customer, str(action.get("uri", "")), origin)
        if kind == "clipboard":
            return {"effect": "clipboard", "text": action.get("clipboardText", "")}
        return {"effect": "unsupported", "message": f"the console does not simulate {kind!r} actions"}

    def richmenu(self, customer: Customer) -> dict | None:
        """The rich menu this customer sees (their link, else the default), as the phone draws it."""
        menu = self.platform.richmenus.menu_for(customer.uid)
        if menu is None or customer.state != "friend":
            return None
        return {"id": menu["richMenuId"], "chatBarText": menu["chatBarText"], "size": menu["size"],
                "image": f"/api/richmenus/{menu['richMenuId']}.img",
                "areas": [{"bounds": a["bounds"], "label": a["action"].get("label", "")} for a in menu["areas"]]}

    async def tap_richmenu(self, customer: Customer, index: int) -> dict:
        """A tap on area `index` of the customer's rich menu: LINE sends its message or postback."""
        self._can_talk(customer)
        try:
            event = self.platform.richmenus.tap(customer.uid, index)
        except (LookupError, ValueError) as exc:
            raise ConsoleError(409, str(exc)) from exc
        if event["type"] == "message":
            self.add_entry(customer, "me", text=event["message"]["text"])
        else:
            self.add_entry(customer, "postback", data=event["postback"]["data"], displayText=None)
        return {"effect": "sent", "webhook_status": await self._deliver(customer, event)}

    async def open_uri(self, customer: Customer, uri: str, origin: str) -> dict:
        """What the phone does with a link the customer taps (in the chat or in a page)."""
        if shop.is_dialog(uri) or (self.shop_link_url and under(uri, self.shop_link_url)):
            return await shop.open_shop(self, customer, uri, origin)  # the account link story
        found = classify_uri(uri)
        warning = None
        if found["kind"] in ("oaMessage", "addFriend") and found["account"] != self.platform.basic_id:
            # on a phone this link would open another account; the console carries on (so the
            # story can go on) but says so loudly
            warning = f"{found['kind']} link for {found['account']!r}, but this account is {self.platform.basic_id!r}"
            self.add_log("link", warning)
        if found["kind"] == "oaMessage":
            answer = {"effect": "prefill", "text": found["text"], "account": found["account"]}
        elif found["kind"] == "addFriend":
            answer = await self.follow(customer)
        elif found["kind"] == "share":
            return {"effect": "share", "text": found["text"]}
        elif found["kind"] == "liff":
            return self.open_liff(customer, uri, found)
        elif self.bot_target(uri) is not None:
            return await self.browse(customer, uri, origin)
        elif urlsplit(uri).scheme in ("http", "https"):
            return {"effect": "external", "url": uri}
        else:
            return {"effect": "unsupported", "message": f"the console cannot open {uri[:80]!r}"}
        if warning:
            answer["warning"] = warning
        return answer

    def share(self, sender: Customer, to: Customer, text: str) -> dict:
        """The share sheet: `text` arrives in another customer's chat with `sender`."""
        self.add_entry(to, "note", sender=sender.name, text=text)
        return {"effect": "shared", "to": to.uid}

    # -- the phone browser
    def bot_target(self, url: str) -> str | None:
        """The local URL for a public link of the bot's (the prefix public_base_url -> bot_url)."""
        for base in (self.public_base_url, self.bot_url):
            if under(url, base):
                return self.bot_url + url[len(base):]
        return None

    def proxied(self, url: str, origin: str) -> str:
        """A URL the console's page (and its iframe) can load: bot resources via /bot/."""
        for base in (self.public_base_url, self.bot_url):
            if under(url, base):
                return origin + "/bot" + (url[len(base):] or "/")
        return url

    async def browse(self, customer: Customer, url: str, origin: str, hops: int = 0) -> dict:
        """Fetch a page of the bot's as this customer's phone would (their language, LINE's
        in-app browser) and return it ready for the sandboxed iframe. Redirects are followed
        here so one that ends on a LINE URL scheme link acts like a tap on it."""
        target = self.bot_target(url)
        if target is None:
            return await self.open_uri(customer, url, origin)
        headers = {"Accept-Language": ACCEPT_LANGUAGE[customer.language], "User-Agent": PHONE_USER_AGENT}
        try:
            async with self.session.get(target, headers=headers, allow_redirects=False) as response:
                body = await response.read()
                status, content_type = response.status, response.content_type
                charset = response.charset or "utf-8"
                location = response.headers.get("Location")
        except (ClientError, TimeoutError) as exc:
            return {"effect": "browser", "url": url, "status": 0,
                    "html": plain_document("ページを開けません could not open the page", f"{url}\n{failure_text(exc)}")}
        if 300 <= status < 400 and location:
            if hops >= REDIRECTS_MAX:
                return {"effect": "browser", "url": url, "status": status,
                        "html": plain_document("リダイレクトが多すぎます too many redirects", url)}
            next_url = urljoin(url, location)
            if self.bot_target(next_url) is not None:
                return await self.browse(customer, next_url, origin, hops + 1)
            return await self.open_uri(customer, next_url, origin)
        if content_type == "text/html":
            document = page_document(body.decode(charset, errors="replace"), base=url,
                                     rewrite_resource=lambda u: self.proxied(u, origin))
        elif content_type.startswith("image/"):
            document = image_document(self.proxied(url, origin))
        else:
            document = plain_document(f"HTTP {status} {content_type}", body.decode(charset, errors="replace"))
        return {"effect": "browser", "url": url, "status": status, "html": document}

    async def scan(self, customer: Customer, image_url: str, links: list[str], origin: str) -> dict:
        """Scan a QR image with LINE's reader: decode it when OpenCV is there, otherwise take the
        public link sent together with the image (the bot sends the QR next to its link)."""
        decoded: str | None = None
        target = self.bot_target(image_url)
        if target is not None:
            try:
                async with self.session.get(target) as response:
                    if response.status == 200:
                        decoded = await asyncio.to_thread(decode_qr, await response.read())
            except (ClientError, TimeoutError):
                decoded = None
        link = decoded or next((u for u in links if self.bot_target(u) is not None or self.is_liff(u)), None)
        if link is None:
            raise ConsoleError(422, "no QR code found in the image and no link sent with it")
        answer = await self.open_uri(customer, link, origin)
        answer["scanned"] = {"url": link, "how": "decoded" if decoded else "paired"}
        return answer

    async def proxy(self, path_qs: str) -> web.Response:
        try:
            async with self.session.get(self.bot_url + path_qs, allow_redirects=False) as response:
                body = await response.read()
                headers = {k: v for k, v in response.headers.items()
                           if k.lower() in ("content-type", "cache-control", "location")}
                return web.Response(status=response.status, body=body, headers=headers)
        except (ClientError, TimeoutError) as exc:
            return web.Response(status=502, text=f"bot unreachable: {failure_text(exc)}")

    # -- the LIFF browser (LINE's, for LIFF URLs) ----------------------------------------------------------
    def is_liff(self, url: str) -> bool:
        found = classify_uri(url)
        return found["kind"] == "liff" and bool(self.liff_id) and found["liff_id"] == self.liff_id

    def open_liff(self, customer: Customer, uri: str, found: dict) -> dict:
        """A LIFF URL: as LINE does, the endpoint opens with the URL's path and query kept in `liff.state`
        (the SDK's liff.init() puts them back). The page is served through the console's /phone/{uid}/ so
        that it runs with this customer's LINE: the stand-in SDK knows who is browsing from that path."""
        if not self.liff_id or found["liff_id"] != self.liff_id or not self.liff_endpoint:
            return {"effect": "unsupported", "message": f"no LIFF app {found['liff_id']!r} in this console"}
        target = self.bot_target(self.liff_endpoint)
        if target is None:
            return {"effect": "unsupported", "message": "the LIFF endpoint is not the bot's"}
        state = found["path"] + ("?" + found["query"] if found["query"] else "")
        frame = f"/phone/{quote(customer.uid, safe='')}{urlsplit(target).path}"
        if state:
            frame += "?liff.state=" + quote(state, safe="")
        return {"effect": "liff", "url": uri, "frame": frame}

    async def phone_request(self, customer: Customer, method: str, path_qs: str, body: bytes | None,
                            content_type: str | None) -> web.Response:
        """A request of the LIFF page (the page itself, its script, its calls) sent on to the bot as this
        customer's LIFF browser sends it: their language, LINE's user agent."""
        headers = {"Accept-Language": ACCEPT_LANGUAGE[customer.language], "User-Agent": PHONE_USER_AGENT + " LIFF"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(method, self.bot_url + path_qs, data=body, headers=headers,
                                            allow_redirects=False) as response:
                answer = await response.read()
                kept = {k: v for k, v in response.headers.items()
                        if k.lower() in ("content-type", "cache-control", "location", "retry-after")}
                if response.content_type == "text/html":
                    answer = with_tap_script(answer.decode(response.charset or "utf-8", errors="replace")).encode()
                return web.Response(status=response.status, body=answer, headers=kept)
        except (ClientError, TimeoutError) as exc:
            return web.Response(status=502, text=f"bot unreachable: {failure_text(exc)}")

    def liff_login(self, customer: Customer, liff_id: str) -> dict:
        """liff.init(): the customer is logged in to the LIFF app (LINE does it silently in its own browser);
        the ID token is what liff.getIDToken() then gives, and what LINE's verify accepts."""
        if not self.liff_id or liff_id != self.liff_id:
            raise ConsoleError(400, f"INIT_FAILED: no LIFF app {liff_id!r} in this console")
        return {"id_token": self.platform.id_token(customer.uid, name=customer.name),
                "friendFlag": customer.state == "friend"}

    async def liff_request_friendship(self, customer: Customer) -> dict:
        """liff.requestFriendship(): LINE's add-friend (or unblock) dialog, accepted; a friend sees it close."""
        if customer.state == "friend":
            return {"effect": "already_friend"}
        return await self.follow(customer)

    def liff_share(self, sender: Customer, to: list[str], messages: Any) -> dict:
        """liff.shareTargetPicker(): the chosen customers receive the messages from the sender, as LINE checks
        them (1 to 5 message objects within its limits)."""
        if not isinstance(messages, list) or not 1 <= len(messages) <= line_limits.MESSAGES_PER_REQUEST_MAX:
            raise ConsoleError(400, "shareTargetPicker takes 1 to 5 message objects")
        if not all(isinstance(m, dict) and m.get("type") in ("text", "image", "video", "audio", "location", "flex",
                                                            "template") for m in messages):
            raise ConsoleError(400, "shareTargetPicker sends text, image, video, audio, location, flex or template")
        problem = line_limits.problem(messages, strict_media=False)
        if problem:
            self.platform.violations.append(f"shareTargetPicker: {problem}")
            raise ConsoleError(400, f"LINE would refuse this message: {problem}")
        targets = [self.customer(uid) for uid in dict.fromkeys(to) if uid != sender.uid]
        if not targets:
            raise ConsoleError(400, "pick at least one other customer")
        for target in targets:
            self.add_entry(target, "shared", sender=sender.name, messages=messages)
        return {"status": "success", "to": [t.uid for t in targets]}

    # -- purchases through the admin API
    async def shopify_order(self, customer: Customer, amount: int, customer_id: str | None = None,
                            coupon: str | None = None) -> dict:
        """An order paid at the Shopify store: the stand-in sends orders/paid, signed as Shopify signs it, and
        retries as Shopify would. The buyer is the shop's customer id (linked, or kept until they link) and/or a
        friend's welcome coupon code."""
        if self.shopify is None:
            raise ConsoleError(409, "no Shopify store here: the bot runs without SHOPIFY_WEBHOOK_SECRET")
        if customer_id is not None and not customer_id.isdigit():
            raise ConsoleError(400, "a Shopify customer id is a number")
        body = shopify_order_body(customer_id=int(customer_id) if customer_id else None,
                                  items=[("シミュレーター商品", 1, amount)], discount_codes=(coupon,) if coupon else ())
        delivery = await self.shopify.send("orders/paid", body, retries=2)
        by = "".join([f" 会員ID customer {customer_id}" if customer_id else "", f" クーポン coupon {coupon}" if coupon
                      else ""])
        self.add_entry(customer, "system", text=f"Shopify注文 order paid ¥{amount:,}{by} (order {body['id']}) → "
                                                f"{' / '.join(str(a) for a in delivery.answers)}",
                       json={"topic": "orders/paid", "webhook_id": delivery.webhook_id, "answers": delivery.answers})
        return {"order_id": str(body["id"]), "answers": delivery.answers}

    async def purchase(self, customer: Customer, amount: int, customer_id: str | None = None) -> dict:
        """A purchase as the shop reports it: by the LINE user, or by the shop's own customer id (account link)."""
        order_id = "sim-" + secrets.token_hex(8)
        payload: dict[str, Any] = {"order_id": order_id, "amount": amount}
        payload.update({"customer_id": customer_id} if customer_id else {"user_id": customer.uid})
        try:
            async with self.session.post(self.bot_url + "/api/v1/conversions", json=payload,
                                         headers={"Authorization": f"Bearer {self.admin_token}"}) as response:
                status = response.status
                text = await response.text()
        except (ClientError, TimeoutError) as exc:
            self.add_entry(customer, "system", text=f"購入の報告に失敗 purchase not reported: {failure_text(exc)}")
            raise ConsoleError(502, f"the bot did not answer: {failure_text(exc)}") from exc
        try:
            answer: Any = json.loads(text)
        except json.JSONDecodeError:
            answer = text
        by = f" 会員ID customer {customer_id}" if customer_id else ""
        self.add_entry(customer, "system", text=f"購入を報告 purchase ¥{amount:,}{by} (order {order_id}) → HTTP {status}",
                       json=answer)
        return {"order_id": order_id, "status": status, "answer": answer}
