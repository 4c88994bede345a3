"""The store path in the simulator console (headless Chromium, `python -m bot dev`): A invites B, B sends the
code and gets a welcome coupon, B's order at the stand-in Shopify store carries it, and A hears that the
referral completed. The console's Shopify button goes through the signed webhook, as a real store would."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.support.rules_helpers import variant
from tests.test_console_browser import WAIT_MS, Console, browser, local_stack, playwright_api, shot
from tests.test_shopify_webhooks import COUPON, NO_QUIET

pytestmark = pytest.mark.browser
__all__ = ["browser", "local_stack"]  # fixtures, used by name
ADMIN = "browser-shopify-admin"


@pytest.fixture
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For `python -m bot dev` (local_stack, set up after this one): the welcome coupon on, a known admin token."""
    monkeypatch.setenv("REWARDS_CONFIG", str(variant(tmp_path, COUPON, **NO_QUIET)))
    monkeypatch.setenv("ADMIN_TOKEN", ADMIN)


async def test_a_shopify_order_with_the_friends_coupon_completes_the_referral(store_env: None, browser: Any, local_stack: dict) -> None:
    api = playwright_api()
    page = await browser.new_page(viewport={"width": 1600, "height": 1000})
    console = Console(page, api.expect)
    expect = api.expect
    await console.open(local_stack["console_url"])
    await console.add_customer("A", "ja")
    b_uid = await console.add_customer("B", "ja")
    for name in ("A", "B"):
        await console.phone(name).locator(".act-follow").click()
        await console.wait_for_more(name, 0)
    before = await console.count("A")
    await console.say("A", "招待")
    await console.wait_for_more("A", before)
    link = str(await console.phone("A").locator('[data-link*="/i/"]').first.get_attribute("data-link"))
    code = link.rsplit("/", 1)[1]
    before = await console.count("B")
    await console.say("B", code)
    await console.wait_for_more("B", before)
    async with ClientSession(headers={"Authorization": f"Bearer {ADMIN}"}) as http, \
            http.get(f"{local_stack['bot_url']}/api/v1/members/{b_uid}") as response:
        coupon = (await response.json())["friend_coupon"]["code"]

    a_before = await console.count("A")
    await console.phone("B").locator(".coupon").fill(coupon)
    await console.phone("B").locator(".act-shopify").click()
    note = console.phone("B").locator(".entry.system .json").last
    await expect(note).to_contain_text("orders/paid", timeout=WAIT_MS)
    assert json.loads(await note.inner_text())["answers"] == [200]
    await console.wait_for_more("A", a_before)  # the referrer's push: the friend's order completed it
    assert re.search(r"\d", await console.last_bot_text("A"))
    await shot(page, "shopify-order")
    assert console.errors == []
    await page.close()
