"""Signing in to the staff dashboard in tests (a pytest plugin, loaded by tests/conftest.py, for its fixtures).

- `dash_bot`: a bot whose PUBLIC_BASE_URL is http (the session cookie is then not Secure, so a client on
  http://127.0.0.1 keeps it), with its worker; `start_dashboard(bot_with, ...)` for other settings.
- `await staff_client(bot, "staff")`: an account of that role (made when missing) signed in over HTTP: a
  StaffClient with its own cookie jar and the session's CSRF token.
- `await sign_in_page(page, bot, "owner")`: the same in a Playwright page, through the sign-in form.
- `chromium()`: headless Chromium (Debian's) as tests/test_console_browser.py launches it.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp import ClientSession, CookieJar
from argon2 import PasswordHasher

from bot.web.dashboard.accounts import StaffAccounts, use_hasher
from tests.support.harness import Bot, BotWith

# Argon2's real cost (64 MiB, 3 passes) is a second a check on a busy CI core; the tests check what the
# dashboard does with a password, not Argon2's strength, so they hash cheaply
use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

DASH_PUBLIC = "http://shop.example.test"
PASSWORD = "correct horse battery staple"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')


def email_of(role: str) -> str:
    return f"{role}@example.test"


async def start_dashboard(bot_with: BotWith, run_worker: bool = True, **settings: object) -> Bot:
    return await bot_with(run_worker=run_worker, **{"public_base_url": DASH_PUBLIC, **settings})


@pytest_asyncio.fixture
async def dash_bot(bot_with: BotWith) -> Bot:
    return await start_dashboard(bot_with)


async def ensure_account(bot: Bot, role: str, email: str | None = None, password: str = PASSWORD) -> str:
    accounts = StaffAccounts(bot.services.redis, bot.services.program.now_ms)
    email = email or email_of(role)
    if await accounts.get(email) is None:
        await accounts.add(email, role, password)
    return email


@dataclass
class StaffClient:
    """An HTTP client signed in to the dashboard (or not yet: `signed_in` False)."""

    bot: Bot
    http: ClientSession
    email: str
    csrf: str = ""
    signed_in: bool = False

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.http.get(self.bot.url + path, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text()

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
                   **kwargs: Any) -> tuple[int, str, str | None]:
        """POST a form (with the session's CSRF token unless csrf=False): (status, body, Location)."""
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        async with self.http.post(self.bot.url + path, data=form, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), r.headers.get("Location")

    async def sign_in(self, password: str = PASSWORD, email: str | None = None) -> tuple[int, str, str | None]:
        """Through the form, as a browser: GET the form (its token), POST it; on success the CSRF token."""
        status, page = await self.get("/admin/login")
        assert status == 200, page
        token = CSRF_FIELD.search(page)
        assert token is not None
        answer = await self.post("/admin/login", {"email": email or self.email, "password": password,
                                                  "csrf": token.group(1)}, csrf=False)
        if answer[0] == 303:
            self.signed_in = True
            await self.refresh_csrf()
        return answer

    async def refresh_csrf(self) -> None:
        status, page = await self.get("/admin/")
        assert status == 200, page
        found = CSRF_META.search(page)
        assert found is not None
        self.csrf = found.group(1)

    async def close(self) -> None:
        await self.http.close()


async def staff_client(bot: Bot, role: str, email: str | None = None, password: str = PASSWORD, *,
                       sign_in: bool = True) -> StaffClient:
    """A client for an account of `role` (made when missing), signed in unless sign_in=False. The caller
    closes it (or gets it from the `staff_clients` fixture, which does)."""
    email = await ensure_account(bot, role, email, password)
    client = StaffClient(bot, ClientSession(cookie_jar=CookieJar(unsafe=True)), email)
    if sign_in:
        status, body, _ = await client.sign_in(password)
        assert status == 303, (status, body)
    return client


@pytest_asyncio.fixture
async def staff_clients() -> AsyncIterator[Any]:
    """`await staff_clients(bot, role, ...)`: staff_client(), closed after the test."""
    made: list[StaffClient] = []

    async def make(bot: Bot, role: str, email: str | None = None, password: str = PASSWORD,
                   sign_in: bool = True) -> StaffClient:
        client = await staff_client(bot, role, email, password, sign_in=sign_in)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


# ---- the browser -----------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's headless Chromium through Playwright (skips the test when either is missing)."""
    from tests.test_console_browser import CHROMIUM_ARGS, chromium_path, playwright_api

    executable = chromium_path()
    api = playwright_api()
    async with api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in_page(page: Any, bot: Bot, role: str, email: str | None = None, password: str = PASSWORD,
                       next_path: str = "/admin/") -> str:
    """Sign `page` in through the form as an account of `role` (made when missing); its email."""
    email = await ensure_account(bot, role, email, password)
    await page.goto(f"{bot.url}/admin/login?next={next_path}")
    await page.fill('input[name="email"]', email)
    await page.fill('input[name="password"]', password)
    await page.click("#signin")
    await page.wait_for_selector("#signout")
    return email


# ---- a member to look at -------------------------------------------------------------------------
async def member_with_coupon(bot: Bot, points: int = 1000, nickname: str | None = None) -> tuple[str, str]:
    """A member (a LINE friend) with `points` after claiming one coffee coupon: (user id, coupon token)."""
    from linesim.platform import new_user_id

    program, catalog = bot.services.program, bot.services.catalog
    uid = new_user_id()
    await program.see(uid, "follow", program.now_ms())
    await program.adjust(uid, points + 300, "seed", "test", f"adjust:seed:{uid}")
    if nickname:
        await program.set_nickname(uid, nickname, False)
    offer = await catalog.show(uid, "coffee")
    assert offer is not None
    claimed = await catalog.confirm(uid, offer.claim_id)
    assert claimed.ok and claimed.coupon is not None, claimed
    return uid, claimed.coupon.token
