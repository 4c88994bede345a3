"""The simulator console's API, in-process: Platform + console_app against a tiny fake bot.

The fake bot is an aiohttp app that checks webhook signatures, records what it got and answers a
text with a reply (text + quick reply) through the Platform, as the real bot would. It also serves
an invite page, a QR image and the conversions endpoint, so every console feature that talks to
the bot can be checked without the real one.
"""
from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse, ClientSession, web

from linesim.console_app import CONSOLE_KEY, console_app
from linesim.phone import classify_uri
from linesim.platform import Platform, sign

SECRET = "console-test-secret"
TOKEN = "console-test-token"
ADMIN_TOKEN = "console-test-admin"
PUBLIC = "https://shop.example"  # differs from the bot's local URL: exercises the prefix mapping
STATIC = Path(__file__).resolve().parent.parent / "linesim" / "static"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def oa_message(text: str) -> str:
    return f"https://line.me/R/oaMessage/%40shokai/?{quote(text)}"


def qr_png(text: str) -> bytes:
    import qrcode  # a project dependency

    buffer = io.BytesIO()
    qrcode.make(text).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class FakeBot:
    platform: Platform
    webhooks: list[dict] = field(default_factory=list)  # the events, in order
    bad_signatures: int = 0
    page_requests: list[dict] = field(default_factory=list)
    conversions: list[dict] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/callback", self.callback)
        app.router.add_get("/i/{code}", self.invite_page)
        app.router.add_get("/qr/{code}.png", self.qr)
        app.router.add_get("/plain", self.plain)
        app.router.add_get("/r", self.redirect)
        app.router.add_post("/api/v1/conversions", self.conversion)
        return app

    def events(self, kind: str) -> list[dict]:
        return [e for e in self.webhooks if e["type"] == kind]

    async def reply(self, token: str, messages: list[dict]) -> None:
        async with ClientSession() as session:
            async with session.post(f"{self.platform.api_url}/v2/bot/message/reply",
                                    json={"replyToken": token, "messages": messages},
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 200, await response.text()

    async def callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-Line-Signature") != sign(body, SECRET):
            self.bad_signatures += 1
            return web.Response(status=400)
        for event in json.loads(body)["events"]:
            self.webhooks.append(event)
            if event["type"] == "follow":
                await self.reply(event["replyToken"], [{"type": "text", "text": "welcome"}])
            elif event["type"] == "message" and event["message"]["type"] == "text":
                text = event["message"]["text"]
                await self.reply(event["replyToken"], [{
                    "type": "text", "text": f"echo: {text} {HOSTILE}",
                    "quickReply": {"items": [
                        {"type": "action", "action": {"type": "message", "label": "招待", "text": "招待"}},
                        {"type": "action", "action": {"type": "postback", "label": "ポイント",
                                                      "data": "action=points", "displayText": "ポイント"}},
                    ]},
                }])
        return web.Response(text="OK")

    async def invite_page(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        self.page_requests.append({"path": request.path, "accept_language": request.headers.get("Accept-Language", ""),
                                   "user_agent": request.headers.get("User-Agent", "")})
        page = (f"<!doctype html><html><head><title>invite</title></head><body>"
                f"<img src='/qr/{code}.png' alt='qr'>"
                f"<a id='friend' href='https://line.me/R/ti/p/%40shokai'>add friend</a>"
                f"<a id='big' href='{oa_message('招待コード ' + code)}'>send the code</a>"
                f"</body></html>")
        return web.Response(text=page, content_type="text/html")

    async def qr(self, request: web.Request) -> web.Response:
        return web.Response(body=qr_png(f"{PUBLIC}/i/{request.match_info['code']}"), content_type="image/png")

    async def plain(self, request: web.Request) -> web.Response:
        return web.Response(text=HOSTILE, content_type="text/plain")

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(oa_message("招待コード REDIR1"))

    async def conversion(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.conversions.append({"authorization": request.headers.get("Authorization"), "body": body})
        return web.json_response({"order_id": body["order_id"], "points_awarded": 30, "referral": None})


@dataclass
class Stack:
    platform: Platform
    bot: FakeBot
    url: str  # the console's origin
    app: web.Application
    http: ClientSession

    async def post(self, path: str, body: dict | None = None, status: int = 200) -> Any:
        async with self.http.post(self.url + path, json=body or {}) as response:
            answer = await response.json()
            assert response.status == status, answer
            return answer

    async def get(self, path: str) -> Any:
        async with self.http.get(self.url + path) as response:
            assert response.status == 200
            return await response.json()

    async def customer(self, name: str = "A", language: str = "ja") -> str:
        return (await self.post("/api/customers", {"name": name, "language": language}, status=201))["uid"]

    async def transcript(self, uid: str) -> list[dict]:
        return await self.get(f"/api/customers/{uid}/transcript")


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    platform = Platform(secret=SECRET, token=TOKEN)
    await platform.start()
    bot = FakeBot(platform)
    bot_runner, bot_url = await serve(bot.app())
    app = console_app(platform, bot_url=bot_url, public_base_url=PUBLIC, admin_token=ADMIN_TOKEN)
    console_runner, console_url = await serve(app)
    http = ClientSession()
    try:
        yield Stack(platform, bot, console_url, app, http)
    finally:
        await http.close()
        await console_runner.cleanup()
        await bot_runner.cleanup()
        await platform.stop()


async def next_event(response: ClientResponse, predicate: Any, timeout: float = 5.0) -> dict:
    """Read the SSE feed until an event matches."""
    async def read() -> dict:
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                event = json.loads(line[len("data: "):])
                if predicate(event):
                    return event
        raise AssertionError("the feed ended")
    return await asyncio.wait_for(read(), timeout)


# ---- customers, follow, block ------------------------------------------------------------------
async def test_add_customer_sets_profile(stack: Stack) -> None:
    uid = await stack.customer("佐藤", "en")
    assert uid.startswith("U") and len(uid) == 33
    assert stack.platform.profiles[uid] == {"userId": uid, "displayName": "佐藤", "language": "en"}
    state = await stack.get("/api/state")
    assert [c["name"] for c in state["customers"]] == ["佐藤"]
    assert state["config"]["public_base_url"] == PUBLIC
    await stack.post("/api/customers", {"name": "", "language": "ja"}, status=400)
    await stack.post("/api/customers", {"name": "x", "language": "fr"}, status=400)


async def test_follow_sends_a_signed_follow_webhook(stack: Stack) -> None:
    uid = await stack.customer()
    answer = await stack.post(f"/api/customers/{uid}/follow")
    assert answer["effect"] == "followed" and answer["webhook_status"] == 200
    assert stack.bot.bad_signatures == 0
    [event] = stack.bot.events("follow")
    assert event["source"]["userId"] == uid and event["follow"] == {"isUnblocked": False}
    assert uid in stack.platform.followers
    kinds = [(e["kind"], e.get("messages", [{}])[0].get("text")) for e in await stack.transcript(uid)]
    assert kinds == [("system", None), ("bot", "welcome")]
    # following again does nothing, as in LINE
    assert (await stack.post(f"/api/customers/{uid}/follow"))["effect"] == "already_friend"
    assert len(stack.bot.events("follow")) == 1


async def test_block_and_unblock(stack: Stack) -> None:
    uid = await stack.customer()
    await stack.post(f"/api/customers/{uid}/block", status=409)  # not a friend yet
    await stack.post(f"/api/customers/{uid}/follow")
    await stack.post(f"/api/customers/{uid}/block")
    assert stack.bot.events("unfollow")[0]["source"]["userId"] == uid
    assert uid not in stack.platform.followers
    await stack.post(f"/api/customers/{uid}/text", {"text": "hello"}, status=409)  # blocked: cannot talk
    await stack.post(f"/api/customers/{uid}/unblock")
    assert stack.bot.events("follow")[-1]["follow"] == {"isUnblocked": True}
    assert (await stack.get("/api/state"))["customers"][0]["state"] == "friend"


# ---- typing and tapping ---------------------------------------------------------------------------
async def test_typed_text_becomes_a_text_event_and_the_reply_streams(stack: Stack) -> None:
    uid = await stack.customer()
    async with stack.http.get(stack.url + "/api/events") as feed:
        assert feed.headers["Content-Type"].startswith("text/event-stream")
        snapshot = await next_event(feed, lambda e: e["type"] == "snapshot")
        assert [c["uid"] for c in snapshot["customers"]] == [uid]
        await stack.post(f"/api/customers/{uid}/text", {"text": "こんにちは"})
        mine = await next_event(feed, lambda e: e["type"] == "entry")
        assert mine["uid"] == uid and mine["entry"]["kind"] == "me" and mine["entry"]["text"] == "こんにちは"
        answer = await next_event(feed, lambda e: e["type"] == "entry")
    [message] = answer["entry"]["messages"]
    assert answer["entry"]["kind"] == "bot" and answer["entry"]["endpoint"] == "reply"
    assert message["text"].startswith("echo: こんにちは")
    assert [i["action"]["label"] for i in message["quickReply"]["items"]] == ["招待", "ポイント"]
    [event] = stack.bot.events("message")
    assert event["message"] == {**event["message"], "type": "text", "text": "こんにちは"}
    assert "replyToken" in event


async def test_tapping_message_and_postback_actions(stack: Stack) -> None:
    uid = await stack.customer()
    tap = f"/api/customers/{uid}/tap"
    await stack.post(tap, {"action": {"type": "message", "label": "招待", "text": "招待"}})
    await stack.post(tap, {"action": {"type": "postback", "label": "p", "data": "action=points", "displayText": "ポイント"}})
    await stack.post(tap, {"action": {"type": "postback", "label": "q", "data": "action=quiet"}})
    assert stack.bot.events("message")[0]["message"]["text"] == "招待"
    assert [e["postback"]["data"] for e in stack.bot.events("postback")] == ["action=points", "action=quiet"]
    postbacks = [e for e in await stack.transcript(uid) if e["kind"] == "postback"]
    assert [(e["data"], e["displayText"]) for e in postbacks] == [("action=points", "ポイント"), ("action=quiet", None)]
    await stack.post(tap, {"action": "nonsense"}, status=400)


async def test_tapping_a_date_picker_sends_the_picked_date(stack: Stack) -> None:
    uid = await stack.customer()
    picker = {"type": "datetimepicker", "label": "誕生日を設定", "data": "pf.bd|x", "mode": "date",
              "initial": "1990-01-01", "min": "1900-01-01", "max": "2026-01-01"}
    await stack.post(f"/api/customers/{uid}/tap", {"action": {**picker, "chosen": "1990-04-12"}})
    await stack.post(f"/api/customers/{uid}/tap", {"action": picker})
    assert [e["postback"]["params"] for e in stack.bot.events("postback")] == [{"date": "1990-04-12"},
                                                                               {"date": "1990-01-01"}]


async def test_oa_message_link_prefills_the_input_without_sending(stack: Stack) -> None:
    uid = await stack.customer()
    answer = await stack.post(f"/api/customers/{uid}/tap",
                              {"action": {"type": "uri", "label": "送る", "uri": oa_message("招待コード AB 12&x=1")}})
    assert answer == {"effect": "prefill", "text": "招待コード AB 12&x=1", "account": "@shokai"}
    assert stack.bot.webhooks == []  # the customer must still tap send


async def test_add_friend_link_follows(stack: Stack) -> None:
    uid = await stack.customer()
    answer = await stack.post(f"/api/customers/{uid}/open", {"url": "https://line.me/R/ti/p/%40shokai"})
    assert answer["effect"] == "followed" and "warning" not in answer
    assert stack.bot.events("follow")[0]["source"]["userId"] == uid
    # a link for another account still works here, but is reported
    other = await stack.customer("B")
    answer = await stack.post(f"/api/customers/{other}/open", {"url": "https://line.me/R/ti/p/@someone"})
    assert answer["effect"] == "followed" and "@someone" in answer["warning"]
    assert any(item["kind"] == "link" for item in (await stack.get("/api/state"))["log"])


async def test_share_link_opens_the_share_sheet_and_reaches_another_customer(stack: Stack) -> None:
    a, b = await stack.customer("A"), await stack.customer("B")
    text = f"友だち招待 {PUBLIC}/i/XYZ"
    answer = await stack.post(f"/api/customers/{a}/tap",
                              {"action": {"type": "uri", "label": "share", "uri": f"https://line.me/R/share?text={quote(text)}"}})
    assert answer == {"effect": "share", "text": text}
    await stack.post(f"/api/customers/{a}/share", {"to": b, "text": text})
    [note] = await stack.transcript(b)
    assert note["kind"] == "note" and note["sender"] == "A" and note["text"] == text
    await stack.post(f"/api/customers/{a}/share", {"to": "Unobody", "text": text}, status=404)


def test_classify_uri() -> None:
    assert classify_uri("https://line.me/R/oaMessage/%40shop/?a%20b") == {"kind": "oaMessage", "account": "@shop", "text": "a b"}
    assert classify_uri("https://line.me/R/ti/p/@shop") == {"kind": "addFriend", "account": "@shop"}
    assert classify_uri("https://line.me/R/msg/text/?hi%21") == {"kind": "share", "text": "hi!"}
    assert classify_uri("https://example.com/line.me/R/ti/p/@x") == {"kind": "other"}


async def test_other_links(stack: Stack) -> None:
    uid = await stack.customer()
    assert await stack.post(f"/api/customers/{uid}/open", {"url": "https://example.com/x"}) == \
        {"effect": "external", "url": "https://example.com/x"}
    assert (await stack.post(f"/api/customers/{uid}/open", {"url": "tel:0120"}))["effect"] == "unsupported"


# ---- the phone browser and QR scanning -------------------------------------------------------------
async def test_invite_page_opens_in_the_phone_browser_as_that_customer(stack: Stack) -> None:
    uid = await stack.customer("B", "en")
    answer = await stack.post(f"/api/customers/{uid}/open", {"url": f"{PUBLIC}/i/ABC123"})
    assert answer["effect"] == "browser" and answer["status"] == 200 and answer["url"] == f"{PUBLIC}/i/ABC123"
    [request] = stack.bot.page_requests
    assert request["path"] == "/i/ABC123" and request["accept_language"].startswith("en")
    assert "Line/" in request["user_agent"]
    page = answer["html"]
    assert f'<base href="{PUBLIC}/i/ABC123">' in page and "shokaiTap" in page
    assert f'src="{stack.url}/bot/qr/ABC123.png"' in page  # resources through the console's proxy
    assert oa_message("招待コード ABC123") in page and "https://line.me/R/ti/p/%40shokai" in page
    async with stack.http.get(f"{stack.url}/bot/qr/ABC123.png") as response:
        assert response.status == 200 and response.content_type == "image/png"
        assert (await response.read()).startswith(b"\x89PNG")
    # a redirect to a LINE link acts like tapping it
    assert (await stack.post(f"/api/customers/{uid}/open", {"url": f"{PUBLIC}/r"}))["text"] == "招待コード REDIR1"
    # an image opens as an image page
    image = await stack.post(f"/api/customers/{uid}/open", {"url": f"{PUBLIC}/qr/ABC123.png"})
    assert f'src="{stack.url}/bot/qr/ABC123.png"' in image["html"]


async def test_scanning_the_invite_qr_opens_the_invite_page(stack: Stack) -> None:
    uid = await stack.customer()
    answer = await stack.post(f"/api/customers/{uid}/scan",
                              {"image_url": f"{PUBLIC}/qr/QR777.png", "links": [f"{PUBLIC}/i/QR777"]})
    assert answer["effect"] == "browser" and answer["url"] == f"{PUBLIC}/i/QR777"
    assert answer["scanned"]["how"] in ("decoded", "paired")
    try:
        import cv2  # noqa: F401
    except ImportError:
        return
    # with OpenCV the code itself is read, whatever link is next to it
    answer = await stack.post(f"/api/customers/{uid}/scan", {"image_url": f"{PUBLIC}/qr/QR888.png", "links": []})
    assert answer["scanned"] == {"url": f"{PUBLIC}/i/QR888", "how": "decoded"}


# ---- purchases, escaping, the log ----------------------------------------------------------------------
async def test_report_purchase_calls_the_conversions_api(stack: Stack) -> None:
    uid = await stack.customer()
    answer = await stack.post(f"/api/customers/{uid}/purchase", {"amount": 5000})
    assert answer["status"] == 200 and answer["answer"]["points_awarded"] == 30
    await stack.post(f"/api/customers/{uid}/purchase", {})
    first, second = stack.bot.conversions
    assert first["authorization"] == f"Bearer {ADMIN_TOKEN}"
    assert first["body"] == {"order_id": answer["order_id"], "user_id": uid, "amount": 5000}
    assert second["body"]["amount"] == 3000 and second["body"]["order_id"] != answer["order_id"]
    notes = [e for e in await stack.transcript(uid) if e["kind"] == "system"]
    assert notes[0]["json"] == {"order_id": answer["order_id"], "points_awarded": 30, "referral": None}
    await stack.post(f"/api/customers/{uid}/purchase", {"amount": "lots"}, status=400)


async def test_html_from_the_bot_is_never_markup_in_the_console(stack: Stack) -> None:
    uid = await stack.customer()
    await stack.post(f"/api/customers/{uid}/text", {"text": "hi"})
    bot_entry = (await stack.transcript(uid))[-1]
    assert HOSTILE in bot_entry["messages"][0]["text"]  # data, verbatim: the page renders it as text
    # pages the console makes itself escape what they show
    plain = await stack.post(f"/api/customers/{uid}/open", {"url": f"{PUBLIC}/plain"})
    assert "<script>" not in plain["html"] and "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in plain["html"]
    # and the page's script never turns strings into markup
    script = (STATIC / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    html = (STATIC / "console.html").read_text()
    assert 'sandbox="allow-scripts"' in html and "allow-same-origin" not in html


async def test_protocol_violations_reach_the_log(stack: Stack) -> None:
    async with stack.http.post(f"{stack.platform.api_url}/v2/bot/nothing", json={}) as response:
        assert response.status == 404

    async def logged() -> list[dict]:
        return [i for i in (await stack.get("/api/state"))["log"] if i["kind"] == "violation"]

    for _ in range(100):
        if await logged():
            break
        await asyncio.sleep(0.05)
    [item] = await logged()
    assert "unknown endpoint" in item["text"]


async def test_static_files_are_served(stack: Stack) -> None:
    for path, kind in (("/", "text/html"), ("/static/console.js", "javascript"), ("/static/console.css", "text/css")):
        async with stack.http.get(stack.url + path) as response:
            assert response.status == 200 and kind in response.headers["Content-Type"], path
    assert stack.app[CONSOLE_KEY].platform is stack.platform


# ---- only pages on this machine may drive the console --------------------------------------------------
EVIL = "https://evil.example"


async def raw_post(stack: Stack, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with stack.http.post(stack.url + path, data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(("headers", "status"), [
    ({"Content-Type": "text/plain"}, 415),  # what a cross-site "simple" fetch or a text/plain form sends
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ({}, 415),
    ({"Content-Type": "application/json", "Origin": EVIL}, 403),
    ({"Content-Type": "application/json", "Origin": "null"}, 403),  # a sandboxed frame or a file: page
    ({"Content-Type": "application/json", "Origin": "http://127.0.0.1.evil.example"}, 403),
    ({"Content-Type": "application/json", "Host": "evil.example"}, 403),  # DNS rebinding: a name that now
    ({"Content-Type": "application/json", "Host": "evil.example:80"}, 403),  # points here, but is not ours
])
async def test_a_request_from_another_site_adds_no_customer_and_reports_no_purchase(
        stack: Stack, headers: dict[str, str], status: int) -> None:
    uid = await stack.customer()
    before = len(stack.bot.conversions)
    answer = await raw_post(stack, "/api/customers", json.dumps({"name": "x", "language": "ja"}).encode(), headers)
    assert answer[0] == status and "error" in answer[1]
    answer = await raw_post(stack, f"/api/customers/{uid}/purchase", json.dumps({"amount": 100_000_000}).encode(),
                            headers)
    assert answer[0] == status
    answer = await raw_post(stack, f"/api/customers/{uid}/follow", b"", headers)
    assert answer[0] == status
    state = await stack.get("/api/state")
    assert [c["uid"] for c in state["customers"]] == [uid]
    assert len(stack.bot.conversions) == before and stack.bot.events("follow") == []


async def test_a_page_from_another_site_cannot_read_the_console_either(stack: Stack) -> None:
    async with stack.http.get(stack.url + "/api/state", headers={"Host": "evil.example"}) as response:
        assert response.status == 403
    async with stack.http.get(stack.url + "/api/state", headers={"Origin": EVIL}) as response:
        assert response.status == 403


@pytest.mark.parametrize("origin", [None, "http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"])
async def test_the_console_page_itself_and_loopback_origins_are_served(stack: Stack, origin: str | None) -> None:
    headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
    status, answer = await raw_post(stack, "/api/customers", json.dumps({"name": "A", "language": "ja"}).encode(),
                                    headers)
    assert status == 201, answer
    for host in ("localhost", "127.0.0.1:1", "[::1]:8080"):
        async with stack.http.get(stack.url + "/api/state", headers={"Host": host}) as response:
            assert response.status == 200


async def test_a_host_the_console_was_started_on_is_served() -> None:
    platform = Platform(secret=SECRET, token=TOKEN)
    await platform.start()
    app = console_app(platform, bot_url="http://127.0.0.1:9", public_base_url=PUBLIC, admin_token=ADMIN_TOKEN,
                      hosts=("192.168.1.20", "0.0.0.0"))
    runner, url = await serve(app)
    try:
        async with ClientSession() as http:
            async with http.get(url + "/api/state", headers={"Host": "192.168.1.20:8080"}) as response:
                assert response.status == 200
            async with http.get(url + "/api/state", headers={"Host": "0.0.0.0:8080"}) as response:
                assert response.status == 403  # "listen everywhere" names no host to trust
    finally:
        await runner.cleanup()
        await platform.stop()
