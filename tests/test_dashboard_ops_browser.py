"""The overview, referrals and rewards pages in headless Chromium (Debian's, through Playwright), in one session
of several checks: the overview draws its charts (a canvas each, no console errors, nothing fetched from
elsewhere, no sideways scrolling on a phone); an approve pressed twice pays once; the owner edits stock; and
each page for each role, the viewer seeing no forms."""
from __future__ import annotations

from typing import Any

import pytest

from rewards.overview import FUNNEL
from tests.support.dashboard import chromium, sign_in_page
from tests.support.harness import Bot
from tests.test_admin_api import points_of
from tests.test_dashboard_ops import review_referral

pytestmark = pytest.mark.browser
WAIT_MS = 30_000  # an upper bound for each step to show up, not a speed requirement
CHARTS = len(FUNNEL) + 7  # the funnel's steps and the key numbers
PAGES = ("/admin/", "/admin/referrals", "/admin/rewards", "/admin/rewards/rules")


class Watched:
    """A browser context's page with its console errors and every request it made."""

    def __init__(self, page: Any, bot: Bot) -> None:
        self.page = page
        self.errors: list[str] = []
        self.elsewhere: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # (the browser's own ask for /favicon.ico, which base.html does not name, is not the pages')
        page.on("console", lambda m: self.errors.append(f"{m.text} {m.location.get('url', '')}")
                if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
        page.on("request", lambda r: None if r.url.startswith((bot.url, "data:", "blob:"))
                else self.elsewhere.append(r.url))
        page.on("dialog", lambda dialog: dialog.accept())  # the forms' data-confirm questions


async def watched(browser: Any, bot: Bot, role: str, locale: str = "ja-JP", **context: Any) -> Watched:
    ctx = await browser.new_context(locale=locale, **context)
    w = Watched(await ctx.new_page(), bot)
    await sign_in_page(w.page, bot, role)
    return w


async def test_overview_review_and_stock_for_each_role(dash_bot: Bot) -> None:
    from playwright.async_api import expect

    bot = dash_bot
    referrer, friend = await review_referral(bot, "fp-one")
    _, waiting_friend = await review_referral(bot, "fp-two")  # left in review: the forms each role sees
    async with chromium() as browser:
        owner = await watched(browser, bot, "owner")
        page = owner.page
        # the overview draws every chart
        await page.goto(f"{bot.url}/admin/?days=7")
        await expect(page.locator("html")).to_have_attribute("data-charts", str(CHARTS), timeout=WAIT_MS)
        assert await page.locator(".chart canvas").count() == CHARTS
        assert await page.locator('.funnel li[data-metric="first_purchases"] .total').inner_text() == "2"
        assert "K係数" in await page.locator('.kpi[data-metric="k_factor"]').inner_text()
        chart = page.locator('.chart[data-metric="completions"] .u-over')  # the pointer over a day says its values
        await chart.hover()
        await expect(page.locator('.hover-value[data-for="completions"]')).to_contain_text("/", timeout=WAIT_MS)
        await page.click('a[href="/admin/?days=90"]')
        await expect(page.locator("html")).to_have_attribute("data-charts", str(CHARTS), timeout=WAIT_MS)

        # approve with a double click: decided once, the ledger pays once, each member told once
        before = await points_of(bot, referrer), await points_of(bot, friend)
        sent = len(bot.platform.calls)
        await page.goto(f"{bot.url}/admin/referrals")
        await page.click(f'tr[data-friend="{friend}"] a')
        await expect(page.locator("#referral-status")).to_have_attribute("data-status", "review")
        await expect(page.locator("#shared-fingerprints")).to_contain_text("fp-one")
        await page.dblclick("#approve")
        await expect(page.locator("#decision-result")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#referral-status")).to_have_attribute("data-status", "completed")
        await expect(page.locator("#decided")).to_contain_text("web:owner@example.test")
        assert await page.locator("#approve").count() == 0
        await bot.idle()
        assert (await points_of(bot, referrer), await points_of(bot, friend)) == (before[0] + 500, before[1] + 300)
        pushes = [c for c in bot.platform.calls[sent:] if c.status == 200 and c.endpoint == "push"]
        assert sorted(sum(who in c.to for c in pushes) for who in (referrer, friend)) == [1, 1]

        # the owner edits stock
        await page.goto(f"{bot.url}/admin/rewards")
        row = page.locator("#reward-coffee")
        await expect(row).to_have_attribute("data-left", "500")
        await row.locator('input[name="add"]').fill("25")
        await row.locator('button[type="submit"]').click()
        await expect(page.locator("#stock-result")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#reward-coffee")).to_have_attribute("data-left", "525")
        await page.click('a[href="/admin/rewards/rules"]')
        await expect(page.locator("#rules-referral")).to_contain_text("¥500")
        assert owner.errors == [] and owner.elsewhere == []

        # each page for each role: the viewer sees no forms but signing out; staff decide but not stock
        for role, locale in (("viewer", "ja-JP"), ("staff", "en-US")):
            w = await watched(browser, bot, role, locale)
            for path in (*PAGES, f"/admin/referrals/{waiting_friend}"):
                response = await w.page.goto(f"{bot.url}{path}")
                assert response is not None and response.status == 200, (role, path)
                forms = await w.page.locator('main form[method="post"]').count()
                decide = await w.page.locator('main form[action*="/admin/referrals/"]').count()
                stock = await w.page.locator('main form[action$="/stock"]').count()
                if role == "viewer":
                    assert forms == 0, (role, path)
                else:
                    assert stock == 0 and decide == (2 if path.startswith("/admin/referrals/U") else 0), path
            if role == "staff":
                assert await w.page.locator("main h1").inner_text() == "Referral"  # English by the browser
            assert w.errors == [] and w.elsewhere == [], role

        # on a phone: the charts fit, nothing scrolls sideways
        phone = await watched(browser, bot, "owner", viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True)
        for path in PAGES:
            await phone.page.goto(f"{bot.url}{path}")
            if path == "/admin/":
                await expect(phone.page.locator("html")).to_have_attribute("data-charts", str(CHARTS),
                                                                            timeout=WAIT_MS)
            width = await phone.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert width <= 0, (path, width)
        assert phone.errors == [] and phone.elsewhere == []
