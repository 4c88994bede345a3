"""`make screens`, the dashboard's Broadcasts page: signed in as an owner of the screens' local stack (after its
cards, so the console's customers are the members), a broadcast composed with its live count, cost and preview,
then sent and watched to done, in Japanese and English; the composer on a phone too.

    dash-broadcasts-<ja|en>.png        the composer on a desk
    dash-broadcasts-confirm-ja.png     the confirmation (the count, the cost, the preview)
    dash-broadcasts-job-<ja|en>.png    the job's page once done
    dash-broadcasts-phone-ja.png       the composer on a phone
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.web.dashboard.accounts import StaffAccounts

EMAIL = "owner@shokai.example"
PASSWORD = "screens-password-0"  # a throwaway account in the screens' temporary Redis
LOCALES = {"ja": "ja-JP", "en": "en-US"}
TEXTS = {"ja": "{name}、今週末はポイント2倍です！お店でお待ちしています。",
         "en": "{name}, double points this weekend! See you at the shop."}
DESK = {"width": 1000, "height": 700}  # as the other dashboard pictures (linesim/screens.py)
PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000  # an upper bound for each step, not a speed requirement


def expected_files(out: Path, languages: tuple[str, ...]) -> list[Path]:
    return ([out / f"dash-broadcasts-{lang}.png" for lang in languages]
            + [out / f"dash-broadcasts-job-{lang}.png" for lang in languages]
            + [out / "dash-broadcasts-confirm-ja.png", out / "dash-broadcasts-phone-ja.png"])


async def sign_in(page: Any, login_url: str, email: str, password: str, then_see: str) -> None:
    """The dashboard's sign-in form filled and sent, then wait for `then_see` on the page it leads to."""
    await page.goto(login_url)
    await page.fill('input[name="email"]', email)
    await page.fill('input[name="password"]', password)
    await page.click("#signin")
    await page.wait_for_selector(then_see, timeout=WAIT_MS)


async def _signed_in(browser: Any, bot_url: str, lang: str, viewport: dict) -> Any:
    context = await browser.new_context(locale=LOCALES[lang], viewport=viewport)
    page = await context.new_page()
    await sign_in(page, f"{bot_url}/admin/login?next=/admin/broadcasts", EMAIL, PASSWORD, "#bc-compose")
    return page


async def _compose(page: Any, lang: str) -> None:
    await page.fill("#bc-text", TEXTS[lang])
    await page.check(f'input[name="segment"][value="language:{lang}"]')
    await page.select_option("#bc-card", "reward:coffee")
    await page.wait_for_selector('#bc-estimate[data-state="ready"] .bc-line-count', timeout=WAIT_MS)
    await page.wait_for_selector("#bc-preview .fx-bubble", timeout=WAIT_MS)


async def take(browser: Any, services: Any, bot_url: str, out: Path, languages: tuple[str, ...]) -> list[Path]:
    """The pictures, into out; raises RuntimeError naming the step that did not show up."""
    accounts = StaffAccounts(services.redis, services.program.now_ms)
    if await accounts.get(EMAIL) is None:
        await accounts.add(EMAIL, "owner", PASSWORD)
    made: list[Path] = []
    errors: list[str] = []  # uncaught exceptions in the page's script, any language
    for lang in languages:
        page = await _signed_in(browser, bot_url, lang, DESK)
        page.on("pageerror", lambda error: errors.append(str(error)))
        await _compose(page, lang)
        made.append(out / f"dash-broadcasts-{lang}.png")
        await page.screenshot(path=str(made[-1]), full_page=True, animations="disabled")
        await page.click("#bc-review")
        await page.wait_for_selector("#bc-preview .fx-bubble", timeout=WAIT_MS)
        if lang == "ja":
            made.append(out / "dash-broadcasts-confirm-ja.png")
            await page.screenshot(path=str(made[-1]), full_page=True, animations="disabled")
        await page.click("#bc-send")
        await page.wait_for_selector('#bc-status[data-status="done"]', timeout=WAIT_MS)
        made.append(out / f"dash-broadcasts-job-{lang}.png")
        await page.screenshot(path=str(made[-1]), full_page=True, animations="disabled")
        if errors:
            raise RuntimeError(f"the Broadcasts page's script failed: {errors[0]}")
        await page.context.close()
    phone = await _signed_in(browser, bot_url, "ja", PHONE)
    await _compose(phone, "ja")
    made.append(out / "dash-broadcasts-phone-ja.png")
    await phone.screenshot(path=str(made[-1]), full_page=True, animations="disabled")
    await phone.context.close()
    return made
