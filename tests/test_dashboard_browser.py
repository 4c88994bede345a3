"""The staff dashboard in headless Chromium (Debian's, through Playwright), one page session per test doing
several checks: sign in and out, refusals, and each page for each role."""
from __future__ import annotations

import pytest

from tests.support.dashboard import chromium, sign_in_page
from tests.support.harness import Bot

pytestmark = pytest.mark.browser
WAIT_MS = 30_000  # an upper bound for each step to show up, not a speed requirement


async def test_sign_in_and_out(dash_bot: Bot) -> None:
    from playwright.async_api import expect

    async with chromium() as browser:
        page = await browser.new_page(locale="ja-JP")
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{dash_bot.url}/admin/")
        await expect(page).to_have_url(f"{dash_bot.url}/admin/login?next=/admin/", timeout=WAIT_MS)
        await sign_in_page(page, dash_bot, "owner")
        await expect(page.locator("main h1")).to_have_text("概要")
        await page.click("#signout")
        await expect(page.locator("#signin")).to_be_visible(timeout=WAIT_MS)
        assert errors == []
