"""`python -m linesim.screens` / `make screens`: pictures of the main cards, as the simulator console draws them.

It starts the local stack in-process as `python -m bot dev` does (embedded Redis in a temporary
directory, the bot, the LINE simulator and its console), builds a Japanese and an English "member with
everything" (silver tier, a completed and a pending referral, points on hold and about to expire, a
coupon) and a brand-new member in each language, then has headless Chromium (the system's, as in the
browser tests) screenshot each card inside its phone: docs/screens/card-<name>-<ja|en>.png.

Everything goes through the simulator and the admin API, as a person at the console would do it.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from bot.config import ASSETS, Settings
from linesim import screens_broadcasts, screens_ops
from linesim.dev import DEV_BASIC_ID, DEV_SECRET, DEV_TOKEN, SIMULATOR_SDK_PATH, dev_admin_token, dev_liff
from linesim.platform import Platform

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screens"
LANGUAGES = ("ja", "en")
# what a member types for each card, per language (the words of assets/words.toml)
WORDS = {
    "points": {"ja": "ポイント", "en": "points"},
    "invite": {"ja": "招待", "en": "invite"},
    "referrals": {"ja": "紹介状況", "en": "referrals"},
    "leaderboard": {"ja": "ランキング", "en": "leaderboard"},
    "help": {"ja": "ヘルプ", "en": "help"},
    "profile": {"ja": "プロフィール", "en": "profile"},
    "rewards": {"ja": "特典", "en": "rewards"},
}
# every picture the script makes, without the language and .png
CARDS = ("welcome", "points", "invite", "referrals", "rewards", "reward", "coupon", "leaderboard", "help", "profile")
STAFF_CARD = "staff"
# the staff dashboard's pages (docs/screens/dash-<name>-<ja|en>.png), at a desk's width, and one on a phone
DASH_PAGES = ("login", "members", "member", "audit", "accounts")
DASH_PHONE = "member-phone"
DASH_OWNER = "owner@example.com"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_SECONDS = 30.0  # an upper bound for an answer to show up, not a speed requirement
# the console's phone grows to its content and shows one exchange: the card, not the history
PHONE_CSS = """
.phone { height: auto !important; }
.phone .chat { flex: none !important; overflow: visible !important; }
.phone .controls, .phone .uid, .phone .scan, .phone .open-as, .phone .entry-link { display: none !important; }
"""


class ScreensError(Exception):
    """Why no pictures could be taken, in one line."""


def expected_files(out: Path) -> list[Path]:
    names = [f"card-{card}-{lang}.png" for card in CARDS for lang in LANGUAGES] + [f"card-{STAFF_CARD}-ja.png"]
    names += [f"dash-{name}-{lang}.png" for name in DASH_PAGES for lang in LANGUAGES] + [f"dash-{DASH_PHONE}-ja.png"]
    return ([out / name for name in names + screens_ops.names(LANGUAGES)]
            + screens_broadcasts.expected_files(out, LANGUAGES))


def find_chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        raise ScreensError("no Chromium: run `make browser` (Debian's chromium) first")
    return path


def playwright_api() -> Any:
    try:
        from playwright import async_api
    except ImportError as exc:
        raise ScreensError("the playwright package is missing: pip install -e '.[test]'") from exc
    return async_api


def screen_rules(into: Path) -> Path:
    """The default rules with a hold on referral points and points that expire soon, so that the member
    card shows points pending and expiring (the defaults have neither)."""
    text = (ASSETS / "rules.toml").read_text(encoding="utf-8")
    for key, value in (("hold_days", "7"), ("expire_after_months", "1"), ("warning_days", "40")):
        text, count = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        if count != 1:
            raise ScreensError(f"assets/rules.toml: expected one `{key} = …` line, found {count}")
    path = into / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    platform: Platform
    bot_url: str
    console_url: str
    admin_token: str
    services: Any = None  # the bot's Services (the dashboard's accounts are made through them)


@contextlib.asynccontextmanager
async def local_stack(data_dir: Path, *, liff: bool = False) -> AsyncIterator[Stack]:
    """What `python -m bot dev` starts, on free loopback ports, with its data in data_dir; with `liff`, its LIFF
    app too (invite links open the LIFF page in the console's LIFF browser, with the stand-in SDK)."""
    from bot.app import SERVICES, create_app
    from bot.richmenu.sync import sync
    from bot.web.listen import listening_socket
    from bot.web.server import Site
    from linesim.console_app import console_app

    port, console_port = free_port(), free_port()
    bot_url = f"http://127.0.0.1:{port}"
    platform = Platform(secret=DEV_SECRET, token=DEV_TOKEN, basic_id=DEV_BASIC_ID, strict_media=False,
                        bot_url=f"{bot_url}/callback")
    await platform.start()
    admin_token = dev_admin_token({})  # a new one per run, as `python -m bot dev` makes
    env = {"LINE_CHANNEL_SECRET": DEV_SECRET, "LINE_CHANNEL_ACCESS_TOKEN": DEV_TOKEN,
           "LINE_API_BASE_URL": platform.api_url, "PUBLIC_BASE_URL": bot_url, "LINE_BASIC_ID": DEV_BASIC_ID,
           "ADMIN_TOKEN": admin_token, "DATA_DIR": str(data_dir), "REWARDS_CONFIG": str(screen_rules(data_dir)),
           **(dev_liff({}) if liff else {})}
    runners: list[web.AppRunner] = []
    try:
        settings = Settings.from_env(env, liff_sdk_url=SIMULATOR_SDK_PATH)
        bot_runner = web.AppRunner(create_app(settings), access_log=None)
        await bot_runner.setup()
        runners.append(bot_runner)
        await Site(bot_runner, listening_socket("127.0.0.1", port, "another free port"),
                   header_seconds=settings.header_read_seconds).start()
        services = bot_runner.app[SERVICES]
        await sync(services.line, services.redis)  # the rich menus, as `make run` sets them up
        console_runner = web.AppRunner(
            console_app(platform, bot_url=bot_url, public_base_url=bot_url, admin_token=admin_token,
                        liff_id=settings.liff_id, liff_endpoint=f"{bot_url}/liff/invite"),
            access_log=None)
        await console_runner.setup()
        runners.append(console_runner)
        await web.TCPSite(console_runner, "127.0.0.1", console_port).start()
        yield Stack(platform, bot_url, f"http://127.0.0.1:{console_port}", admin_token, services)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await platform.stop()


class Phones:
    """The console, driven through its own HTTP API (what its buttons call), seen in Chromium."""

    def __init__(self, stack: Stack, http: ClientSession, page: Any) -> None:
        self.stack = stack
        self.http = http
        self.page = page
        self.names: dict[str, str] = {}  # uid -> display name
        self.members: dict[str, str] = {}  # language -> the member with everything, for the dashboard's pictures

    async def call(self, method: str, path: str, body: dict | None = None, *, admin: bool = False) -> Any:
        base, headers = self.stack.console_url, {}
        if admin:
            base, headers = self.stack.bot_url, {"Authorization": f"Bearer {self.stack.admin_token}"}
        if body is None and method != "GET":
            body = {}  # the console takes state changes as JSON only (linesim/console_app.py local_only)
        async with self.http.request(method, base + path, json=body, headers=headers) as response:
            answer = await response.json()
            if response.status >= 400:
                raise ScreensError(f"{method} {path} → HTTP {response.status}: {json.dumps(answer, ensure_ascii=False)}")
            return answer

    async def transcript(self, uid: str) -> list[dict]:
        return list(await self.call("GET", f"/api/customers/{uid}/transcript"))

    async def last_seq(self, uid: str) -> int:
        entries = await self.transcript(uid)
        return int(entries[-1]["seq"]) if entries else 0

    async def add(self, name: str, language: str) -> str:
        uid = str((await self.call("POST", "/api/customers", {"name": name, "language": language}))["uid"])
        self.names[uid] = name
        await self.page.locator(f'.phone[data-uid="{uid}"]').wait_for(timeout=WAIT_SECONDS * 1000)
        return uid

    async def answer(self, uid: str, after: int) -> dict:
        """The first thing the bot says to uid after entry `after`, once the page shows it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while True:
            said = [e for e in await self.transcript(uid) if e["seq"] > after and e["kind"] == "bot"]
            if said:
                break
            if loop.time() > deadline:
                raise ScreensError(f"{self.names[uid]}: no answer from the bot within {WAIT_SECONDS:.0f} s")
            await asyncio.sleep(0.1)
        await self.page.locator(f'.entry[data-seq="{said[0]["seq"]}"]').wait_for(state="attached",
                                                                             timeout=WAIT_SECONDS * 1000)
        return dict(said[0])

    async def act(self, uid: str, what: str, body: dict | None = None) -> dict:
        """Do something in uid's phone (follow, say, tap…) and wait for the bot's answer."""
        before = await self.last_seq(uid)
        await self.call("POST", f"/api/customers/{uid}/{what}", body or {})
        return await self.answer(uid, before)

    async def say(self, uid: str, text: str) -> dict:
        return await self.act(uid, "text", {"text": text})

    async def shot(self, uid: str, path: Path, *, after: int, upto: int, menu: bool = False) -> None:
        """A picture of uid's phone showing only the entries after..upto (what was sent and the answer)."""
        phone = f'.phone[data-uid="{uid}"]'
        css = (PHONE_CSS + f"{phone} .entry {{ display: none !important; }}\n"
               + "".join(f'{phone} .entry[data-seq="{seq}"] {{ display: flex !important; }}\n'
                         for seq in range(after + 1, upto + 1)))
        if not menu:
            css += f"{phone} .richmenu {{ display: none !important; }}\n"
        await self.page.evaluate("css => { document.getElementById('screens-style').textContent = css; }", css)
        locator = self.page.locator(phone)
        await locator.scroll_into_view_if_needed()
        # every picture in the phone loaded (or failed: a broken image shows as such)
        await self.page.wait_for_function(
            "sel => [...document.querySelectorAll(sel + ' img')].every(i => i.loading === 'lazy' && !i.offsetParent"
            " || i.complete)", arg=phone, timeout=WAIT_SECONDS * 1000)
        await locator.screenshot(path=str(path), animations="disabled")

    async def card(self, uid: str, path: Path, what: str, body: dict) -> dict:
        """Send something, and picture the exchange: the member's line and the bot's card."""
        before = await self.last_seq(uid)
        await self.call("POST", f"/api/customers/{uid}/{what}", body)
        said = await self.answer(uid, before)
        await self.shot(uid, path, after=before, upto=said["seq"])
        return said


def postback_action(entry: dict, prefix: str) -> dict:
    """The first postback action in the bot's messages whose data starts with prefix."""
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "postback" and str(node.get("data", "")).startswith(prefix + "|"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(entry.get("messages", []))
    if not found:
        raise ScreensError(f"no button with {prefix!r} in the bot's answer")
    return found[0]


async def full_member(phones: Phones, name: str, language: str) -> str:
    """A member with everything: silver tier, a completed referral (points on hold), a pending one,
    points about to expire."""
    uid = await phones.add(name, language)
    await phones.act(uid, "follow")
    await phones.call("POST", f"/api/v1/members/{uid}/adjustments",
                      {"points": 1500, "reason": "screens: welcome gift", "operation_id": f"screens-{uid}"},
                      admin=True)
    invite = await phones.say(uid, WORDS["invite"][language])
    match = re.search(re.escape(phones.stack.bot_url) + r"/i/([A-Za-z0-9]+)", json.dumps(invite["messages"]))
    if match is None:
        raise ScreensError("no invite link in the invite card")
    for n, friend_name in enumerate(("ゆい", "Ken") if language == "ja" else ("Mia", "Tom")):
        friend = await phones.add(friend_name, "ja" if language == "ja" else "en")
        await phones.act(friend, "follow")
        before = await phones.last_seq(uid)
        await phones.say(friend, f"招待コード {match.group(1)}")
        await phones.answer(uid, before)  # the referrer hears about the new friend
        if n == 0:  # the first one buys: that referral completes
            before = await phones.last_seq(uid)
            await phones.call("POST", f"/api/customers/{friend}/purchase", {"amount": 3000})
            await phones.answer(uid, before)
    return uid


async def capture(out: Path, *, chromium: str | None = None) -> list[Path]:
    """Start the stack, take every picture into out and return their paths."""
    executable = chromium or find_chromium()
    api = playwright_api()
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shokai-screens-") as data:
        async with local_stack(Path(data)) as stack, ClientSession(timeout=ClientTimeout(total=WAIT_SECONDS)) as http, \
                api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(stack.console_url + "/")
                await page.locator("#connection.live").wait_for(timeout=WAIT_SECONDS * 1000)
                await page.evaluate("() => { const s = document.createElement('style'); s.id = 'screens-style';"
                                    " document.head.append(s); }")
                phones = Phones(stack, http, page)
                made = await take_pictures(phones, out)
                made += await dashboard_pictures(stack, browser, phones.members, out)
                try:  # the dashboard's overview, referrals and rewards pages, with a history behind them
                    made += await screens_ops.take(phones, browser, out, LANGUAGES, DASH_OWNER)
                except (RuntimeError, api.Error) as exc:
                    raise ScreensError(f"the dashboard's overview, referrals or rewards page: {exc}") from exc
                if errors:
                    raise ScreensError(f"the console's script failed: {errors[0]}")
                try:  # the dashboard's pages, after the cards: the console's customers are its members
                    made += await screens_broadcasts.take(browser, stack.services, stack.bot_url, out, LANGUAGES)
                except (RuntimeError, api.Error) as exc:
                    raise ScreensError(f"the dashboard's Broadcasts page: {exc}") from exc
            finally:
                await browser.close()
            if stack.platform.violations:
                raise ScreensError(f"the bot broke LINE's protocol: {stack.platform.violations[0]}")
    return made


async def take_pictures(phones: Phones, out: Path) -> list[Path]:
    made: list[Path] = []

    def path(card: str, language: str) -> Path:
        made.append(out / f"card-{card}-{language}.png")
        return made[-1]

    for language in LANGUAGES:
        newcomer = await phones.add("はな" if language == "ja" else "Lily", language)
        await phones.card(newcomer, path("welcome", language), "follow", {})
        uid = await full_member(phones, "さくら" if language == "ja" else "Emma", language)
        phones.members[language] = uid
        catalog = await phones.card(uid, path("rewards", language), "text", {"text": WORDS["rewards"][language]})
        detail = await phones.card(uid, path("reward", language), "tap",
                                   {"action": postback_action(catalog, "rw.show")})
        await phones.card(uid, path("coupon", language), "tap", {"action": postback_action(detail, "rw.ok")})
        for card in ("points", "invite", "referrals", "leaderboard", "help", "profile"):
            await phones.card(uid, path(card, language), "text", {"text": WORDS[card][language]})
    # the staff view: today's numbers, with the staff rich menu open under the chat
    staff = await phones.add("店長", "ja")
    await phones.call("POST", f"/api/v1/staff/{staff}", {}, admin=True)
    await phones.act(staff, "follow")
    before = await phones.last_seq(staff)
    said = await phones.say(staff, "今日の数字")
    # the rich menu starts closed, as in LINE: its bar opens it
    await phones.page.locator(f'.phone[data-uid="{staff}"] .richmenu-bar').click(timeout=WAIT_SECONDS * 1000)
    await phones.page.wait_for_function(
        "sel => { const m = document.querySelector(sel); return m && !m.hidden && m.querySelector('img')?.complete; }",
        arg=f'.phone[data-uid="{staff}"] .richmenu', timeout=WAIT_SECONDS * 1000)
    await phones.shot(staff, path(STAFF_CARD, "ja"), after=before, upto=said["seq"], menu=True)
    return made


async def dashboard_pictures(stack: Stack, browser: Any, members: dict[str, str], out: Path) -> list[Path]:
    """The staff dashboard as its owner sees it: sign-in, a search, a member's page after an adjustment made
    through its form, the audit log and the accounts, in each language; and a member's page on a phone."""
    import secrets

    from bot.web.dashboard.accounts import StaffAccounts

    program = stack.services.program
    accounts = StaffAccounts(stack.services.redis, program.now_ms)
    password = secrets.token_urlsafe(12)
    await accounts.add(DASH_OWNER, "owner", password)
    await accounts.add("staff@example.com", "staff", secrets.token_urlsafe(12))
    await accounts.add("viewer@example.com", "viewer", secrets.token_urlsafe(12))
    for language, uid in members.items():  # the nickname each told the bot (プロフィール)
        await program.set_nickname(uid, "さくら" if language == "ja" else "Emma", True)
    made: list[Path] = []

    async def shot(page: Any, name: str, language: str) -> None:
        made.append(out / f"dash-{name}-{language}.png")
        await page.screenshot(path=str(made[-1]), full_page=True, animations="disabled")

    for language in LANGUAGES:
        uid = members[language]
        context = await browser.new_context(locale="ja-JP" if language == "ja" else "en-US",
                                            viewport={"width": 1000, "height": 700})
        page = await context.new_page()
        timeout = WAIT_SECONDS * 1000
        await page.goto(f"{stack.bot_url}/admin/login")
        await page.fill('input[name="email"]', DASH_OWNER)
        await shot(page, "login", language)
        await page.fill('input[name="password"]', password)
        await page.click("#signin")
        await page.locator("#signout").wait_for(timeout=timeout)
        await page.goto(f"{stack.bot_url}/admin/members?q=" + ("さく" if language == "ja" else "emm"))
        await page.locator("#member-results").wait_for(timeout=timeout)
        await shot(page, "members", language)
        await page.goto(f"{stack.bot_url}/admin/members/{uid}")
        await page.fill('#adjust-form input[name="points"]', "200")
        await page.fill('#adjust-form input[name="reason"]',
                        "お待たせしたお詫び" if language == "ja" else "Sorry for the wait")
        await page.click("#adjust-submit")
        await page.locator("#done").wait_for(timeout=timeout)
        await shot(page, "member", language)
        if language == "ja":
            phone = await browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 800},
                                              storage_state=await context.storage_state())
            phone_page = await phone.new_page()
            await phone_page.goto(f"{stack.bot_url}/admin/members/{uid}")
            await phone_page.locator("#balance").wait_for(timeout=timeout)
            made.append(out / f"dash-{DASH_PHONE}-ja.png")
            await phone_page.screenshot(path=str(made[-1]), animations="disabled")  # the first screenful
            await phone.close()
        await page.goto(f"{stack.bot_url}/admin/audit")
        await page.locator("#audit-table").wait_for(timeout=timeout)
        await shot(page, "audit", language)
        await page.goto(f"{stack.bot_url}/admin/accounts")
        await page.locator("#accounts").wait_for(timeout=timeout)
        await shot(page, "accounts", language)
        await context.close()
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m linesim.screens", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        made = asyncio.run(capture(args.out))
    except ScreensError as exc:
        print(f"screens: {exc}", file=sys.stderr)
        return 1
    for path in made:
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
