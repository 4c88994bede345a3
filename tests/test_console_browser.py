"""The simulator console in headless Chromium (the system's; never a downloaded one).

1. The referral story against the whole local stack (`python -m bot dev` in a subprocess): two
   customers, an invite link opened in the phone browser, the pre-filled code sent, a purchase,
   and the points balance.
2. Rendering against a tiny in-process fake bot: what the bot sends is shown as text, never
   run as markup, and quick replies are tappable.

Screenshots land in docs/screens/console-*.png.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from linesim.console_app import console_app
from linesim.platform import Platform, sign

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "docs" / "screens"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STARTUP_SECONDS = 60
WAIT_MS = 30_000  # an upper bound for each step to show up, not a speed requirement


def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        print("SKIP: no system chromium (install it with `apt-get install chromium`)")
        pytest.skip("no system chromium (apt-get install chromium)")
    return path


def playwright_api() -> Any:
    try:
        from playwright import async_api
    except ImportError:
        print("SKIP: the playwright package is not installed (pip install playwright)")
        pytest.skip("the playwright package is not installed")
    return async_api


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from tests.support.dashboard import chromium  # one launcher for every browser test

    async with chromium() as launched:
        yield launched


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def shot(page: Any, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENS / f"console-{name}.png"), full_page=True)


class Console:
    """The console page, seen through the selectors its markup promises."""

    def __init__(self, page: Any, expect: Any) -> None:
        self.page = page
        self.expect = expect
        self.errors: list[str] = []  # uncaught exceptions in the console's script
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def phone(self, name: str) -> Any:
        return self.page.locator(f'.phone[data-name="{name}"]')

    def bot_entries(self, name: str) -> Any:
        return self.phone(name).locator(".entry.bot")

    async def open(self, url: str) -> None:
        await self.page.goto(url)
        await self.expect(self.page.locator("#connection.live")).to_be_visible(timeout=WAIT_MS)

    async def add_customer(self, name: str, language: str = "ja") -> str:
        await self.page.fill("#new-name", name)
        await self.page.select_option("#new-language", language)
        await self.page.click("#add-customer-button")
        await self.expect(self.phone(name)).to_be_visible(timeout=WAIT_MS)
        return str(await self.phone(name).get_attribute("data-uid"))

    async def count(self, name: str) -> int:
        return int(await self.bot_entries(name).count())

    async def wait_for_more(self, name: str, than: int) -> None:
        """Wait until the bot has said something more to this customer."""
        selector = f'.phone[data-name="{name}"] .entry.bot'
        await self.page.wait_for_function("([s, n]) => document.querySelectorAll(s).length > n",
                                          arg=[selector, than], timeout=WAIT_MS)

    async def say(self, name: str, text: str | None = None) -> None:
        """Type (or, with None, send what is already in the box) and tap send."""
        if text is not None:
            await self.phone(name).locator(".draft").fill(text)
        await self.phone(name).locator(".send").click()

    async def last_bot_text(self, name: str) -> str:
        return str(await self.bot_entries(name).last.inner_text())


# ---- 1. the referral story against the real local stack ------------------------------------------
@pytest.fixture
async def local_stack(tmp_path: Path) -> AsyncIterator[dict]:
    """`python -m bot dev` in its own process group, answering on its console port; after the test, the LINE
    stand-in inside it must have recorded no protocol violation (as for the `bot_with` fixture)."""
    if not (ROOT / "linesim" / "dev.py").exists() or not (ROOT / "bot" / "__main__.py").exists():
        print("SKIP: `python -m bot dev` does not exist yet (linesim/dev.py, bot/__main__.py)")
        pytest.skip("`python -m bot dev` does not exist yet")
    port, console_port = free_port(), free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("PUBLIC_BASE_URL", None)  # links must point at this stack: http://127.0.0.1:<port>
    env["LIFF_ID"] = ""  # the plain invite page's story (tests/test_liff_browser.py plays the LIFF one)
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "dev", "--port", str(port), "--console-port", str(console_port),
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    console_url = f"http://127.0.0.1:{console_port}/"
    try:
        async with ClientSession(timeout=ClientTimeout(total=2)) as http:
            for _ in range(STARTUP_SECONDS * 4):
                if process.returncode is not None:
                    pytest.fail(f"`python -m bot dev` exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    async with http.get(console_url) as response:
                        if response.status == 200:
                            break
                except (ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.25)
            else:
                pytest.fail(f"the console did not answer within {STARTUP_SECONDS} s:\n{log_path.read_text()[-3000:]}")
        yield {"console_url": console_url, "bot_url": f"http://127.0.0.1:{port}", "log": log_path}
        # the stand-in runs inside `bot dev`: its violations reach us through the console's log
        async with ClientSession(timeout=ClientTimeout(total=10)) as http:
            async with http.get(console_url + "api/state") as response:
                log = (await response.json())["log"]
        violations = [item["text"] for item in log if item["kind"] == "violation"]
        assert violations == [], f"LINE protocol violations: {violations}"
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)  # the whole group: the bot and its embedded Redis
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        print(f"--- python -m bot dev output (last lines) ---\n{log_path.read_text()[-4000:]}")


async def test_referral_story_in_the_console(browser: Any, local_stack: dict) -> None:
    api = playwright_api()
    page = await browser.new_page(viewport={"width": 1600, "height": 1000})
    console = Console(page, api.expect)
    expect = api.expect
    await console.open(local_stack["console_url"])

    await console.add_customer("A", "ja")
    b_uid = await console.add_customer("B", "ja")

    # A adds the account as a friend: a welcome arrives
    await console.phone("A").locator(".act-follow").click()
    await console.wait_for_more("A", 0)
    await expect(console.phone("A")).to_have_attribute("data-state", "friend")

    # A asks for an invite: a link to the invite page and the QR image
    before = await console.count("A")
    await console.say("A", "招待")
    await console.wait_for_more("A", before)
    invite = console.phone("A").locator('[data-link*="/i/"]').first
    await expect(invite).to_be_attached(timeout=WAIT_MS)
    link = str(await invite.get_attribute("data-link"))
    match = re.fullmatch(re.escape(local_stack["bot_url"]) + r"/i/([A-Za-z0-9]+)", link)
    assert match, f"the invite link is not PUBLIC_BASE_URL/i/CODE: {link}"
    code = match.group(1)
    qr = console.phone("A").locator(f'img.msg-image[data-src^="{local_stack["bot_url"]}/"]').first
    await expect(qr).to_be_visible(timeout=WAIT_MS)
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await qr.element_handle(),
                                 timeout=WAIT_MS)
    await shot(page, "invite")

    # the rich menu starts closed, as in LINE; its bar opens and closes it; the header opens the dashboard
    bar, menu = console.phone("A").locator(".richmenu-bar"), console.phone("A").locator(".richmenu")
    await expect(bar).to_be_visible(timeout=WAIT_MS)
    await expect(menu).to_be_hidden()
    await bar.click()
    await expect(menu).to_be_visible()
    await bar.click()
    await expect(menu).to_be_hidden()
    await expect(page.locator("#dashboard-link")).to_have_attribute("href", local_stack["bot_url"] + "/admin/")

    # B scans the QR on A's screen: LINE's reader opens the invite page in B's phone browser
    await console.phone("A").locator(".scan").last.click()
    await expect(page.locator("#chooser-title")).to_have_text("誰が読み取る？ scan as…")  # text, not "[object …]"
    await page.locator(f'#chooser button[data-uid="{b_uid}"]').click()
    await expect(page.locator("#browser")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#browser-url")).to_have_attribute("title", link)
    await page.click("#browser-close")
    await expect(page.locator("#browser")).to_be_hidden()

    # B opens the link A got ("open as…" B): the invite page in B's phone browser
    await console.phone("A").locator(f'.open-as[data-link="{link}"]').first.click()
    await page.locator(f'#chooser button[data-uid="{b_uid}"]').click()
    await expect(page.locator("#browser")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#browser")).to_have_attribute("data-uid", b_uid)
    frame = page.frame_locator("#browser-frame")
    add_friend = frame.locator('a[href^="https://line.me/R/ti/p/"]').first
    big_button = frame.locator('a[href^="https://line.me/R/oaMessage/"]').first
    await expect(add_friend).to_be_visible(timeout=WAIT_MS)
    await expect(big_button).to_be_visible(timeout=WAIT_MS)
    await shot(page, "invite-page")

    # B adds the account from the page (a welcome arrives), then taps the big button
    await add_friend.click()
    await console.wait_for_more("B", 0)
    await expect(console.phone("B")).to_have_attribute("data-state", "friend")
    await big_button.click()
    draft = console.phone("B").locator(".draft")
    await expect(draft).to_have_value(re.compile(re.escape(code)), timeout=WAIT_MS)
    await expect(page.locator("#browser")).to_be_hidden()
    await shot(page, "prefilled")

    # B sends the pre-filled code: B gets an answer, A a notice
    a_before, b_before = await console.count("A"), await console.count("B")
    await console.say("B")
    await expect(console.phone("B").locator(".entry.me").last).to_contain_text(code)
    await console.wait_for_more("B", b_before)
    await console.wait_for_more("A", a_before)
    await shot(page, "referred")

    # a purchase by B completes the referral: the answer shows it and A hears about it
    a_before = await console.count("A")
    await console.phone("B").locator(".act-purchase").click()
    note = console.phone("B").locator(".entry.system .json").last
    await expect(note).to_be_visible(timeout=WAIT_MS)
    answer = json.loads(await note.inner_text())
    assert isinstance(answer, dict) and answer.get("referral"), f"the purchase completed no referral: {answer}"
    await console.wait_for_more("A", a_before)
    await shot(page, "purchase")

    # A checks the points: the answer carries a balance
    a_before = await console.count("A")
    await console.say("A", "ポイント")
    await console.wait_for_more("A", a_before)
    points = await console.last_bot_text("A")
    assert re.search(r"\d", points), f"no balance in the points answer: {points!r}"
    await shot(page, "points")

    violations = await page.locator("#log-items .log-violation").all_inner_texts()
    assert violations == [], f"the bot broke LINE's protocol: {violations}"
    assert console.errors == []
    await page.close()


# ---- 2. rendering against a fake bot ----------------------------------------------------------------
SECRET, TOKEN = "browser-test-secret", "browser-test-token"
HOSTILE = '<img src=x onerror="window.__pwned=1"><b>bold?</b>'


@pytest.fixture
async def fake_stack() -> AsyncIterator[dict]:
    platform = Platform(secret=SECRET, token=TOKEN, strict_media=False)
    await platform.start()
    texts: list[str] = []
    where: dict[str, str] = {}

    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-Line-Signature") != sign(body, SECRET):
            return web.Response(status=400)
        for event in json.loads(body)["events"]:
            if event["type"] != "message":
                continue
            texts.append(event["message"]["text"])
            share_uri = "https://line.me/R/share?text=" + quote(f"一緒に始めよう {where['bot']}/i/SHARE1")
            # a video hero: valid for LINE, not drawn by the console (a placeholder instead)
            video = {"type": "video", "url": "https://example.com/v.mp4", "previewUrl": "https://example.com/p.png",
                     "altContent": {"type": "image", "url": "https://example.com/p.png"}, "aspectRatio": "20:13"}
            bubble = {"type": "bubble", "hero": video, "body": {"type": "box", "layout": "vertical", "contents": [
                {"type": "text", "text": HOSTILE, "weight": "bold", "wrap": True},
                {"type": "button", "style": "primary", "action": {"type": "message", "label": HOSTILE[:40], "text": "flex"}},
            ]}}
            messages = [{"type": "text", "text": HOSTILE},
                        {"type": "flex", "altText": "card", "contents": bubble,
                         "quickReply": {"items": [
                             {"type": "action", "action": {"type": "message", "label": "招待", "text": "招待"}},
                             {"type": "action", "action": {"type": "uri", "label": "シェア", "uri": share_uri}}]}}]
            async with ClientSession() as http:
                async with http.post(f"{platform.api_url}/v2/bot/message/reply",
                                     json={"replyToken": event["replyToken"], "messages": messages},
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                    assert response.status == 200, await response.text()
        return web.Response(text="OK")

    bot = web.Application()
    bot.router.add_post("/callback", callback)
    bot_runner, bot_url = await serve(bot)
    where["bot"] = bot_url
    console_runner, console_url = await serve(
        console_app(platform, bot_url=bot_url, public_base_url=bot_url, admin_token="unused"))
    try:
        yield {"console_url": console_url + "/", "bot_url": bot_url, "texts": texts}
    finally:
        await console_runner.cleanup()
        await bot_runner.cleanup()
        await platform.stop()


async def test_bot_strings_render_as_text_and_quick_replies_tap(browser: Any, fake_stack: dict) -> None:
    api = playwright_api()
    page = await browser.new_page(viewport={"width": 900, "height": 900})
    console = Console(page, api.expect)
    await console.open(fake_stack["console_url"])
    await console.add_customer("C", "en")
    await console.say("C", "hello")
    await console.wait_for_more("C", 0)
    phone = console.phone("C")
    await api.expect(phone.locator(".bubble.bot").first).to_have_text(HOSTILE)
    await api.expect(phone.locator(".fx-text").first).to_have_text(HOSTILE)
    await api.expect(phone.locator(".fx-unknown")).to_have_text("[video]")
    assert await page.locator('img[src="x"], b').count() == 0
    assert await page.evaluate("window.__pwned") is None
    await shot(page, "rendering")
    # the quick reply under the last message sends its text
    await phone.locator(".quick-replies .chip", has_text="招待").click()
    await api.expect(phone.locator(".entry.me").last).to_have_text(re.compile("招待"))
    await console.wait_for_more("C", 1)
    assert fake_stack["texts"] == ["hello", "招待"]
    # the share link opens the share sheet; what C sends there reaches D, whose copy of the link opens
    await console.add_customer("D", "ja")
    await phone.locator(".quick-replies .chip", has_text="シェア").click()
    await api.expect(page.locator("#share")).to_be_visible()
    link = f"{fake_stack['bot_url']}/i/SHARE1"
    await api.expect(page.locator("#share-text")).to_have_text(f"一緒に始めよう {link}")
    await page.locator('#share-targets button[data-name="D"]').click()
    note = console.phone("D").locator(".entry.note")
    await api.expect(note).to_contain_text("C さんから")
    await api.expect(note.locator(f'.open-as[data-link="{link}"]')).to_be_visible()
    await shot(page, "share")
    # block and unblock from the phone's header
    await phone.locator(".act-follow").click()
    await api.expect(phone).to_have_attribute("data-state", "friend")
    await phone.locator(".act-block").click()
    await api.expect(phone).to_have_attribute("data-state", "blocked")
    await api.expect(phone.locator(".send")).to_be_disabled()
    await phone.locator(".act-unblock").click()
    await api.expect(phone).to_have_attribute("data-state", "friend")
    assert console.errors == []
    await page.close()
