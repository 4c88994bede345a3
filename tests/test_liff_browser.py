"""The LIFF invite story in headless Chromium, in the simulator console (the local stack in-process, with its
LIFF app, as `make run` starts it): A's invite link is a LIFF URL; B opens it in LINE's LIFF browser, where
the stand-in SDK gives an ID token the stand-in's verify accepts; the page attributes B before the follow,
asks for the friendship, B follows and the referral is pending (B and A both told); B sends the invite card
to C with shareTargetPicker, and the share is counted; C opens the card's link.

Screenshots land in docs/screens/liff-*.png (the README's "Invites through LIFF")."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout

from linesim import screens
from linesim.platform import LIFF_ID
from tests.test_console_browser import chromium_path, playwright_api

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "docs" / "screens"
WAIT_MS = 30_000  # an upper bound for each step to show up, not a speed requirement


async def test_the_liff_story_in_the_console(tmp_path: Path) -> None:
    executable = chromium_path()
    api = playwright_api()
    expect = api.expect
    async with screens.local_stack(tmp_path, liff=True) as stack, \
            ClientSession(timeout=ClientTimeout(total=30)) as http, api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=screens.CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1500, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(stack.console_url + "/")
            await expect(page.locator("#connection.live")).to_be_visible(timeout=WAIT_MS)
            phones = screens.Phones(stack, http, page)
            a = await phones.add("A", "ja")
            b = await phones.add("B", "ja")
            c = await phones.add("C", "en")

            def phone(uid: str) -> Any:
                return page.locator(f'.phone[data-uid="{uid}"]')

            async def admin(path: str) -> Any:
                return await phones.call("GET", path, admin=True)

            await phones.act(a, "follow")
            invite = await phones.say(a, "招待")
            link = next(u for u in _uris(invite["messages"]) if u.startswith(f"https://liff.line.me/{LIFF_ID}?code="))
            code = link.rsplit("=", 1)[1]

            # B opens A's link ("open as…" B): LINE's LIFF browser with the bot's LIFF page
            a_before = await phones.last_seq(a)
            await phone(a).locator(f'.open-as[data-link="{link}"]').first.click()
            await page.locator(f'#chooser button[data-uid="{b}"]').click()
            await expect(page.locator("#browser")).to_have_attribute("data-kind", "liff", timeout=WAIT_MS)
            frame = page.frame_locator("#browser-frame")
            result = frame.locator("#result")
            # attributed before the follow, then the friendship asked for (B follows), then pending
            await expect(result).to_have_attribute("data-status", "pending", timeout=WAIT_MS)
            await expect(phone(b)).to_have_attribute("data-state", "friend")
            await expect(frame.locator("#plain")).to_be_hidden()
            assert "send-code" not in await frame.locator("#liff").inner_html()
            said_to_b = [e for e in await phones.transcript(b) if e["kind"] == "bot"]
            assert any("招待" in json.dumps(e["messages"], ensure_ascii=False) for e in said_to_b), said_to_b
            await phones.answer(a, a_before)  # A hears a friend joined
            member = await admin(f"/api/v1/members/{a}")
            assert member["referrals"] == {"invited": 1, "pending": 1, "completed": 0}
            await page.locator("#browser").screenshot(path=str(_screen("liff-invite-ja.png")))

            # "send to friends": LINE's target picker (the stand-in's), C chosen; C receives the invite card
            c_before = await phones.last_seq(c)
            await frame.locator("#share").click()
            await frame.locator(f'#liff-share-target-picker input[value="{c}"]').check()
            await frame.locator("#liff-share-send").click()
            await expect(frame.locator("#share")).to_have_text("送りました！ありがとうございます😊", timeout=WAIT_MS)
            shared = phone(c).locator('.entry[data-kind="shared"]').last
            await expect(shared).to_be_visible(timeout=WAIT_MS)
            assert (await phones.transcript(c))[-1]["seq"] > c_before
            stats = await admin("/api/v1/stats")
            assert stats["report"]["shares"] == 1 and stats["report"]["liff_attributions"] == 1, stats["report"]
            assert stats["report"]["funnel"]["awaiting_follow"] == 1
            await page.click("#browser-close")
            await shared.screenshot(path=str(_screen("liff-shared-ja.png")))

            # C taps the card's button: the LIFF page in English, C not a friend yet
            await shared.locator("button, .fx-button").filter(has_text="招待を受け取る").first.click()
            await expect(page.locator("#browser")).to_have_attribute("data-uid", c, timeout=WAIT_MS)
            await expect(frame.locator("#result")).to_have_attribute("data-status", "pending", timeout=WAIT_MS)
            await expect(frame.locator("h1")).to_contain_text("invite", timeout=WAIT_MS)
            assert code in await frame.locator(".code").inner_text()
            await page.click("#browser-close")

            # A opens their own link: refused as in chat, and the share button is there for A too
            await phone(a).locator(f'.open-as[data-link="{link}"]').first.click()
            await page.locator(f'#chooser button[data-uid="{a}"]').click()
            await expect(frame.locator("#result")).to_have_attribute("data-status", "refused", timeout=WAIT_MS)
            await expect(frame.locator("#share")).to_be_visible()
            await page.click("#browser-close")

            violations = await page.locator("#log-items .log-violation").all_inner_texts()
            assert violations == [] and stack.platform.violations == [], violations or stack.platform.violations
            assert errors == []
        finally:
            await browser.close()


def _uris(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["uri"]] if isinstance(node.get("uri"), str) else []
        return found + [u for v in node.values() for u in _uris(v)]
    if isinstance(node, list):
        return [u for v in node for u in _uris(v)]
    return []


def _screen(name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    return SCREENS / name
