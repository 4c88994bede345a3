"""The account link story in the simulator console, in headless Chromium, against `python -m bot dev`:

a purchase reported by the shop's customer id before the link is kept; 連携 sends the button to the shop's login
page (the console's stand-in, SHOP_LINK_URL in dev mode); logging in there with the customer id makes the
"shop's server" call POST /api/v1/account-links and go to LINE's dialog, which the stand-in plays by sending the
signed accountLink event; the bot says it linked and credited the kept order; the member card shows the link.

Screenshots (README): docs/screens/console-account-link-login.png and console-account-link.png.
"""
from __future__ import annotations

import json
from typing import Any

from tests.test_console_browser import (  # noqa: F401 - fixtures, used by name
    WAIT_MS,
    Console,
    browser,
    local_stack,
    playwright_api,
    shot,
)

CUSTOMER = "C-2024-0815"


async def test_account_link_story_in_the_console(browser: Any, local_stack: dict) -> None:  # noqa: F811
    api = playwright_api()
    expect = api.expect
    page = await browser.new_page(viewport={"width": 1600, "height": 1000})
    console = Console(page, expect)
    await console.open(local_stack["console_url"])
    await console.add_customer("Hana", "ja")
    hana = console.phone("Hana")
    await hana.locator(".act-follow").click()
    await console.wait_for_more("Hana", 0)

    # the shop reports an order by its own customer id: not linked yet, so it is kept (202 unattributed)
    await hana.locator(".customer-id").fill(CUSTOMER)
    await hana.locator(".amount").fill("5000")
    await hana.locator(".act-purchase").click()
    note = hana.locator(".entry.system .json").last
    await expect(note).to_be_visible(timeout=WAIT_MS)
    assert json.loads(await note.inner_text())["status"] == "unattributed"

    # 連携: a button to the shop's login page, with the link token
    before = await console.count("Hana")
    await console.say("Hana", "連携")
    await console.wait_for_more("Hana", before)
    button = hana.locator('.fx-button[data-uri*="/shop/link?linkToken="]').last
    await expect(button).to_be_visible(timeout=WAIT_MS)
    await button.click()

    # the shop's login page in Hana's phone browser: she logs in with her customer id
    await expect(page.locator("#browser")).to_be_visible(timeout=WAIT_MS)
    frame = page.frame_locator("#browser-frame")
    await frame.locator("#customer_id").fill(CUSTOMER)
    await shot(page, "account-link-login")
    before = await console.count("Hana")
    await frame.locator("#login-button").click()

    # LINE's dialog (the stand-in) sends the accountLink event; the bot tells her, with the kept order's points
    await expect(page.locator("#browser")).to_be_hidden(timeout=WAIT_MS)
    await console.wait_for_more("Hana", before)
    told = await console.last_bot_text("Hana")
    assert "連携しました" in told and "****0815" in told and "50" in told, told
    assert CUSTOMER not in told
    await shot(page, "account-link")

    # the member card shows the link
    before = await console.count("Hana")
    await console.say("Hana", "ポイント")
    await console.wait_for_more("Hana", before)
    card = await console.last_bot_text("Hana")
    assert "連携済み" in card, card

    violations = await page.locator("#log-items .log-violation").all_inner_texts()
    assert violations == [], f"the bot broke LINE's protocol: {violations}"
    assert console.errors == []
    await page.close()
