"""The staff dashboard in headless Chromium (Debian's, through Playwright). Each test is one browser with a
few pages, each page session doing several checks: sign-in and out, a wrong password, the lockout, an
expired session, the pages of each role, a viewer who cannot change anything (by the page or by posting the
form itself), CSRF refused, and an adjustment that shows up as a ledger line."""
from __future__ import annotations

from typing import Any

import pytest

from bot.web.dashboard.lockout import PER_ACCOUNT
from tests.support.dashboard import PASSWORD, chromium, ensure_account, member_with_coupon, sign_in_page
from tests.support.harness import Bot
from tests.support.rules_helpers import Clock

pytestmark = pytest.mark.browser
WAIT_MS = 30_000  # an upper bound for each step to show up, not a speed requirement


def expect_api() -> Any:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


async def new_page(browser: Any, locale: str = "ja-JP", width: int = 1100) -> tuple[Any, list[str]]:
    page = await browser.new_page(locale=locale, viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # (the console's "Failed to load resource" lines are the refusals the tests provoke: not script errors)
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("response", lambda response: errors.append(f"404 {response.url}") if response.status == 404 else None)
    return page, errors


async def post_from_page(page: Any, path: str, form: dict[str, str], csrf: str | None) -> int:
    """POST a form from inside the page (as a forged or hand-made request would be), with this csrf field."""
    return int(await page.evaluate(
        """async ([path, form, csrf]) => {
             const body = new URLSearchParams(form);
             if (csrf !== null) body.set("csrf", csrf);
             const r = await fetch(path, { method: "POST", body, redirect: "manual" });
             return r.status;
           }""", [path, form, csrf]))


async def test_staff_finds_a_member_adjusts_and_redeems_viewer_only_reads(dash_bot: Bot) -> None:
    expect = expect_api()
    bot = dash_bot
    uid, _ = await member_with_coupon(bot, nickname="さくら")
    before = (await bot.services.program.member(uid)).points  # type: ignore[union-attr]
    async with chromium() as browser:
        # staff, in Japanese: a wrong password first, then in; find さくら, adjust, see the ledger line
        page, errors = await new_page(browser)
        await page.goto(f"{bot.url}/admin/members")
        await expect(page).to_have_url(f"{bot.url}/admin/login?next=/admin/members")
        await ensure_account(bot, "staff")
        await page.fill('input[name="email"]', "staff@example.test")
        await page.fill('input[name="password"]', "not the password")
        await page.click("#signin")
        await expect(page.locator("#signin-error")).to_have_text("メールアドレスかパスワードが違います。")
        await page.fill('input[name="password"]', PASSWORD)
        await page.click("#signin")
        await expect(page).to_have_url(f"{bot.url}/admin/members")
        await page.fill("#member-query", "さく")
        await page.click("#member-search")
        await page.locator("#member-results a", has_text="さくら").click()
        await expect(page.locator("#member-name")).to_have_text("さくら")
        await expect(page.locator("#balance")).to_contain_text(f"{before:,}")
        await page.fill('#adjust-form input[name="points"]', "+120")
        await page.fill('#adjust-form input[name="reason"]', "お詫びの加算")
        await page.locator("#adjust-submit").dblclick()  # a double click adjusts once
        await expect(page.locator("#done")).to_be_visible()
        await expect(page.locator("#ledger-table tbody tr").first).to_contain_text("+120")
        await expect(page.locator("#ledger-table tbody tr").first).to_contain_text("お詫びの加算")
        await expect(page.locator("#balance")).to_contain_text(f"{before + 120:,}")
        await expect(page.locator("#trail")).to_contain_text("web:staff@example.test")
        # over the staff limit: refused with the limit named
        limit = bot.services.program.rules.staff_adjust_limit
        await page.fill('#adjust-form input[name="points"]', str(limit + 1))
        await page.fill('#adjust-form input[name="reason"]', "too much")
        await page.click("#adjust-submit")
        await expect(page.locator("#error")).to_contain_text(f"{limit:,}")
        # the coupon, redeemed after the confirmation
        page.on("dialog", lambda dialog: dialog.accept())
        await page.locator("#coupons button.redeem").click()
        await expect(page.locator("#done")).to_have_text("クーポンを使用済みにしました。")
        await expect(page.locator("#coupons")).to_contain_text("使用済み")
        # a form with a wrong CSRF token: refused, nothing changed
        csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert await post_from_page(page, f"/admin/members/{uid}", {"points": "5", "reason": "x",
                                                                    "op": "forged-form-token-0001"}, "bad") == 403
        assert await post_from_page(page, f"/admin/members/{uid}", {"points": "5", "reason": "x",
                                                                    "op": "forged-form-token-0002"}, None) == 403
        await page.evaluate("() => { document.querySelector('#adjust-form input[name=csrf]').value = 'stale'; }")
        await page.fill('#adjust-form input[name="points"]', "5")
        await page.fill('#adjust-form input[name="reason"]', "x")
        await page.click("#adjust-submit")
        await expect(page.locator("h1.refused")).to_contain_text("フォームの確認に失敗")
        # staff see no accounts page
        await page.goto(f"{bot.url}/admin/accounts")
        await expect(page.locator("h1.refused")).to_have_text("この操作の権限がありません。")
        await expect(page.locator(".nav a", has_text="アカウント")).to_have_count(0)
        await page.click("#signout")
        await expect(page.locator("#signin")).to_be_visible()
        assert errors == [], errors
        assert csrf

        # a viewer, in English: reads the member, no form; posting it by hand is refused
        page, errors = await new_page(browser, "en-US", width=390)
        await sign_in_page(page, bot, "viewer", next_path=f"/admin/members/{uid}")
        await expect(page.locator("#ledger")).to_contain_text("Points history")
        await expect(page.locator("#adjust-form")).to_have_count(0)
        await expect(page.locator("#coupons button.redeem")).to_have_count(0)
        csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
        assert await post_from_page(page, f"/admin/members/{uid}", {"points": "5", "reason": "x",
                                                                    "op": "viewer-form-token-0001"}, csrf) == 403
        await page.goto(f"{bot.url}/admin/audit?what=adjust_points")
        await expect(page.locator("#audit-table")).to_contain_text("web:staff@example.test")
        # the page fits a phone: nothing wider than the screen
        assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert errors == [], errors
    view = await bot.services.program.member(uid)
    assert view is not None and view.points == before + 120, "one adjustment, nothing from the refused ones"


async def test_owner_accounts_lockout_and_expired_session(dash_bot: Bot) -> None:
    expect = expect_api()
    bot = dash_bot
    clock = Clock()
    bot.services.program.clock = clock
    await ensure_account(bot, "staff")
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await sign_in_page(page, bot, "owner", next_path="/admin/accounts")
        await expect(page.locator("#accounts")).to_contain_text("staff@example.test")
        await page.fill('#account-add input[name="email"]', "new.hire@example.test")
        await page.select_option('#account-add select[name="role"]', "viewer")
        await page.fill('#account-add input[name="password"]', "a long enough password")
        await page.click("#account-add button[type=submit]")
        await expect(page.locator("#done")).to_have_text("アカウントを追加しました。")
        row = page.locator('#accounts tr[data-email="new.hire@example.test"]')
        await expect(row).to_contain_text("閲覧のみ")
        page.on("dialog", lambda dialog: dialog.accept())
        await row.locator("button.danger").click()
        await expect(page.locator("#done")).to_have_text("アカウントを削除しました（ログイン中の画面も使えなくなります）。")
        await expect(page.locator('#accounts tr[data-email="new.hire@example.test"]')).to_have_count(0)
        await page.goto(f"{bot.url}/admin/audit?what=account_add")
        await expect(page.locator("#audit-table")).to_contain_text("new.hire@example.test")
        # idle past the limit: the next page asks to sign in again, and says why
        clock.advance(minutes=bot.services.settings.dashboard_idle_minutes + 1)
        await page.goto(f"{bot.url}/admin/members")
        await expect(page.locator("#signin-error")).to_contain_text("ログアウトしました")
        assert errors == [], errors

        # the lockout: wrong passwords until locked; then even the right one is refused, with the time
        page, errors = await new_page(browser)
        await page.goto(f"{bot.url}/admin/login")
        for _ in range(PER_ACCOUNT.failures):
            await page.fill('input[name="email"]', "staff@example.test")
            await page.fill('input[name="password"]', "wrong wrong wrong")
            await page.click("#signin")
            await page.wait_for_load_state()
        await page.fill('input[name="email"]', "staff@example.test")
        await page.fill('input[name="password"]', PASSWORD)
        await page.click("#signin")
        await expect(page.locator("#signin-error")).to_contain_text("以降にもう一度お試しください")
        assert errors == [], errors
