"""The dashboard's Broadcasts page (bot/web/dashboard/broadcasts.py) and what it adds to the broadcast service:
named segments combined, the Flex cards a broadcast may carry, the estimate (count, LINE's quota, yen)."""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bot.broadcasts import cards
from bot.broadcasts.runner import BroadcastRunner
from bot.broadcasts.service import BroadcastError, Broadcasts
from linesim.platform import new_user_id
from rewards import segments
from rewards.segments import SegmentError
from tests.support.dashboard import StaffClient, chromium, sign_in_page, start_dashboard
from tests.support.harness import Bot, BotWith

WAIT_MS = 30_000  # an upper bound for each step to show up, not a speed requirement


NAMES = ("Emma", "Liam", "さくら", "はると", "ゆい", "そうた")  # the first two are seeded in English


async def seed(bot: Bot, n: int, *, english: int = 0) -> list[str]:
    """n members written through the domain, the first `english` of them in English; LINE's followers kept in step."""
    program = bot.services.program
    uids = [new_user_id() for _ in range(n)]
    at = int(time.time() * 1000)
    for start in range(0, n, 16):
        await asyncio.gather(*(program.see(uid, "follow", at, "en" if i < english else "ja")
                               for i, uid in enumerate(uids[start:start + 16], start)))
    bot.platform.followers.extend(uids)
    for i, uid in enumerate(uids):
        bot.platform.profiles[uid] = {"userId": uid, "displayName": NAMES[i % len(NAMES)], "language": "ja"}
    return uids


# ---- named segments, combined -------------------------------------------------------------------------
def test_picked_segments_combine_into_one_segment() -> None:
    assert segments.combine(["birthday"], "all") == {"birthday_this_month": True}
    assert segments.combine(["tier:gold", "language:en", "tier:gold"], "any") == {
        "any": [{"tier": ["gold"]}, {"language": ["en"]}]}
    assert segments.combine(["never_referred", "expiring"], "all") == {
        "all": [{"never_referred": True}, {"points_expiring_within_days": 14}]}
    for names, how in (([], "all"), (["bogus"], "all"), (["birthday"], "xor"), (["tier:"], "all")):
        with pytest.raises(SegmentError):
            segments.combine(names, how)


# ---- cards and the estimate, through the service ---------------------------------------------------------------
async def test_cards_are_valid_line_messages_and_the_estimate_prices_what_goes_past_the_quota(bot_with: BotWith
                                                                                              ) -> None:
    bot = await bot_with(run_worker=False)
    services = bot.services
    await seed(bot, 12, english=5)
    b = Broadcasts(services)
    offered = [key for key, _ in cards.choices(services, "ja")]
    assert offered[0] == "help" and "reward:coffee" in offered
    assert "reward:online500" not in offered  # a Shopify discount without a shop: the catalog hides it too
    for key in offered:
        for lang in ("ja", "en"):
            card = cards.message(services, key, lang)
            assert b.messages({"messages": [card]}) == [card]  # the SDK's models and LINE's limits
    with pytest.raises(cards.CardError):
        cards.message(services, "reward:online500", "ja")

    bot.platform.monthly_quota = 10
    body = {"messages": [{"type": "text", "text": "{name}、週末はポイント2倍！"}, cards.message(services, "help", "ja")]}
    answer = await b.estimate(body)
    assert answer["total"] == answer["messages"] == 12 and answer["message_objects"] == 2
    assert answer["quota"] == {"limit": 10, "used": 0}
    assert answer["over_quota"] == 2 and answer["yen"] == 2 * 3  # [broadcasts] extra_message_yen = 3
    assert [w["code"] for w in answer["warnings"]] == ["QUOTA_EXCEEDED"]
    assert answer["preview"][0]["messages"][0]["text"].endswith("、週末はポイント2倍！")  # {name} filled
    english = await b.estimate({**body, "segment": segments.combine(["language:en"], "all")})
    assert english["total"] == 5 and english["over_quota"] == 0 and english["yen"] == 0

    bot.platform.monthly_quota = None  # a plan without a limit
    assert (await b.estimate(body))["quota"] == {"limit": None, "used": 0}
    with pytest.raises(BroadcastError):
        await b.estimate({**body, "dry_run": True})
    with pytest.raises(BroadcastError):
        await b.estimate({**body, "scheduled_at": "yesterday"})
    assert not bot.platform.calls or all(c.endpoint not in ("push", "multicast") for c in bot.platform.calls)


# ---- the page over HTTP: who may do what -----------------------------------------------------------------------
DRAFT = "0123456789abcdef0123456789abcdef"


def form(**over: object) -> list[tuple[str, str]]:
    """The composer's fields (a text to one named segment, now), as a browser posts them; `segment` may be a list."""
    fields: dict[str, object] = {"text": "週末はポイント2倍！", "card": "", "card_lang": "ja", "audience": "segments",
                                 "segment": ["language:ja"], "combine": "all", "when": "now", "scheduled_at": "",
                                 "draft": DRAFT, "confirmed": "yes", **over}
    pairs: list[tuple[str, str]] = []
    for name, value in fields.items():
        pairs += [(name, str(v)) for v in value] if isinstance(value, list) else [(name, str(value))]
    return pairs


async def post(client: StaffClient, path: str, pairs: list[tuple[str, str]], *, csrf: bool = True
               ) -> tuple[int, str, str | None]:
    data = pairs + ([("csrf", client.csrf)] if csrf else [])
    async with client.http.post(client.bot.url + path, data=data, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location")


async def audit_entries(bot: Bot) -> list[dict]:
    status, answer = await bot.admin("GET", "/api/v1/audit?limit=500")
    assert status == 200, answer
    return list(answer["entries"])  # type: ignore[index]


async def test_every_broadcast_post_is_refused_without_a_session_a_token_or_the_role(bot_with: BotWith,
                                                                                     staff_clients) -> None:
    bot = await start_dashboard(bot_with, run_worker=False)  # nothing is sent: the jobs stay as created
    await seed(bot, 6, english=2)
    b = Broadcasts(bot.services)
    later = (await b.create({"text": "later", "scheduled_at": _in_days(30)}, by="test"))["id"]
    anonymous = await staff_clients(bot, "viewer", email="nobody@example.test", sign_in=False)
    viewer, staff, owner = [await staff_clients(bot, role) for role in ("viewer", "staff", "owner")]
    everyone = form(audience="everyone", segment=[])
    refused = [  # (client, path, fields, with the token, status)
        *[(anonymous, path, fields, True, 401) for path, fields in (
            ("/admin/broadcasts", form()), ("/admin/broadcasts/estimate", form()),
            (f"/admin/broadcasts/{later}/cancel", []), (f"/admin/broadcasts/{later}/resume", []))],
        *[(owner, path, fields, False, 403) for path, fields in (
            ("/admin/broadcasts", form()), ("/admin/broadcasts/estimate", form()),
            (f"/admin/broadcasts/{later}/cancel", []), (f"/admin/broadcasts/{later}/resume", []))],
        *[(viewer, path, fields, True, 403) for path, fields in (
            ("/admin/broadcasts", form()), ("/admin/broadcasts/estimate", form()),
            (f"/admin/broadcasts/{later}/cancel", []), (f"/admin/broadcasts/{later}/resume", []))],
        (staff, "/admin/broadcasts", everyone, True, 403),  # everyone is an owner's
        (staff, "/admin/broadcasts/estimate", everyone, True, 403),
        (staff, "/admin/broadcasts", form(audience="everyone"), True, 403),  # picks beside it change nothing
    ]
    before = len(await audit_entries(bot))
    for client, path, fields, token, status in refused:
        got, body, _ = await post(client, path, fields, csrf=token)
        assert got == status, (client.email, path, got, body[:300])
    assert [j["id"] for j in await b.latest()] == [later] and (await b.get(later) or {})["status"] == "scheduled"
    assert len(await audit_entries(bot)) == before
    assert not [c for c in bot.platform.calls if c.endpoint in ("push", "multicast")]

    # what each role reads: everyone the list; the composer only for those who may send; everyone only for owners
    status, page = await viewer.get("/admin/broadcasts")
    assert status == 200 and later in page and 'id="bc-compose"' not in page and 'action="/admin/broadcasts/' not in (
        await viewer.get(f"/admin/broadcasts/{later}"))[1]
    status, page = await staff.get("/admin/broadcasts")
    assert status == 200 and 'id="bc-compose"' in page and 'value="everyone"' not in page
    status, page = await owner.get("/admin/broadcasts")
    assert status == 200 and 'value="everyone"' in page
    status, answer = await viewer.get(f"/admin/broadcasts/{later}/progress")
    assert status == 200 and '"status": "scheduled"' in answer

    # allowed: the confirmation shows the count first; confirmed, one job per draft however often it is sent
    status, page, _ = await post(staff, "/admin/broadcasts", [p for p in form() if p[0] != "confirmed"])
    assert status == 200 and "4人に送信します。" in page and 'name="confirmed" value="yes"' in page
    assert [j["id"] for j in await b.latest()] == [later]
    status, _, location = await post(staff, "/admin/broadcasts", form())
    again = await post(staff, "/admin/broadcasts", form())
    assert status == 303 and again[0] == 303 and again[2] == location and location
    first = location
    job = await b.get(location.rsplit("/", 1)[1]) or {}
    assert job["total"] == 4 and job["by"] == "web:staff@example.test"
    assert len(await b.latest()) == 2
    status, _, location = await post(owner, "/admin/broadcasts", form(audience="everyone", segment=[]))
    assert status == 303 and (await b.get(location.rsplit("/", 1)[1]) or {})["total"] == 6
    status, _, _ = await post(staff, f"/admin/broadcasts/{later}/cancel", [])
    assert status == 303 and (await b.get(later) or {})["status"] == "cancelled"
    whos = [(e["who"], e["what"]) for e in (await audit_entries(bot))[before:]]
    assert whos == [("web:staff@example.test", "broadcast"), ("web:owner@example.test", "broadcast"),
                    ("web:staff@example.test", "broadcast_cancel")], whos
    # a job's page says to whom and what, as stored
    staff_job = (await b.latest())[1]["id"]
    status, page = await viewer.get(f"/admin/broadcasts/{staff_job}")
    assert status == 200 and '<dd id="bc-who">日本語の方</dd>' in page
    assert json.dumps("週末はポイント2倍！")[1:-1] in page  # the messages, for the preview (JSON, never markup)

    # resuming a paused job to everyone sends to everyone: an owner's, as creating it was
    bot.platform.monthly_limit_reached = True
    await BroadcastRunner(bot.services, "dash").run_due()
    everyone_job = location.rsplit("/", 1)[1]
    assert (await b.get(everyone_job) or {})["status"] == "paused"
    bot.platform.monthly_limit_reached = False
    assert (await post(staff, f"/admin/broadcasts/{everyone_job}/resume", []))[0] == 403
    assert (await b.get(everyone_job) or {})["status"] == "paused"
    assert (await post(owner, f"/admin/broadcasts/{everyone_job}/resume", []))[0] == 303
    assert (await b.get(everyone_job) or {})["status"] == "queued"

    # an unknown job: 404 on its page, its progress and its buttons
    unknown = "a" * 32
    assert (await viewer.get(f"/admin/broadcasts/{unknown}"))[0] == 404
    assert (await viewer.get(f"/admin/broadcasts/{unknown}/progress"))[0] == 404
    assert (await post(staff, f"/admin/broadcasts/{unknown}/cancel", []))[0] == 404
    # a bad draft is answered with why, and stores nothing
    status, page, _ = await post(staff, "/admin/broadcasts", form(text="", draft="e" * 32))
    assert status == 400 and 'id="bc-refused"' in page and len(await b.latest()) == 3
    status, page, _ = await post(staff, "/admin/broadcasts", form(draft="not-a-draft"))
    assert status == 400 and 'data-code="INVALID_DRAFT"' in page and len(await b.latest()) == 3
    status, page, _ = await post(staff, "/admin/broadcasts/estimate", form(segment=["bogus"]))
    assert status == 400 and "INVALID_SEGMENT" in page
    # the same draft changed (back in the browser, the text edited) is another broadcast, not the first one again
    status, _, location = await post(staff, "/admin/broadcasts", form(text="直した本文"))
    assert status == 303 and location != first and len(await b.latest()) == 4


def _in_days(days: int) -> str:
    return datetime.fromtimestamp(time.time() + days * 86_400, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the page in Chromium: compose, preview, confirm, send, watch; pause and resume; cancel ----------------------
def reached(bot: Bot, text: str) -> Counter[str]:
    """How many times each member got a multicast whose first message ends with `text` (accepted by LINE)."""
    got: Counter[str] = Counter()
    for c in bot.platform.calls:
        if c.endpoint == "multicast" and c.status == 200 and str(c.body["messages"][0].get("text", "")).endswith(text):
            got.update(c.to)
    return got


@pytest.mark.browser
async def test_compose_preview_send_and_watch_it_done_then_pause_resume_and_cancel(bot_with: BotWith) -> None:
    from playwright.async_api import expect

    bot = await start_dashboard(bot_with)  # with its worker: the jobs really run, against the LINE stand-in
    uids = await seed(bot, 6, english=2)
    japanese = uids[2:]
    async with chromium() as browser:
        page = await browser.new_page(locale="ja-JP", viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await sign_in_page(page, bot, "owner", next_path="/admin/broadcasts")
        await expect(page.locator("main h1")).to_have_text("配信")

        # what staff type is drawn as text, never run as markup
        hostile = '<img src=x onerror="window.__pwned=1"><b>太字?</b>'
        await page.fill("#bc-text", hostile)
        await expect(page.locator("#bc-estimate .notice.error")).to_contain_text(
            "送る相手の条件を1つ以上選んでください。", timeout=WAIT_MS)  # no recipients chosen yet: said in Japanese
        await page.check('input[name="segment"][value="birthday"]')
        await expect(page.locator("#bc-preview .bubble")).to_have_text(hostile, timeout=WAIT_MS)
        assert await page.evaluate("() => window.__pwned") is None
        await page.uncheck('input[name="segment"][value="birthday"]')

        # compose: a text with {name} and the help card, to Japanese speakers; the count and preview follow the form
        await page.fill("#bc-text", "{name}、週末はポイント2倍！")
        await page.check('input[name="segment"][value="language:ja"]')
        estimate = page.locator("#bc-estimate")
        await expect(estimate.locator(".bc-line-count")).to_have_text("4人に届きます", timeout=WAIT_MS)
        await expect(estimate).to_contain_text("今月の無料メッセージ: 30,000通のうち0通使用")
        await expect(page.locator("#bc-preview .bubble")).to_have_text(
            re.compile(r"^(さくら|はると|ゆい|そうた)さん、週末はポイント2倍！$"))  # a real member's name, as LINE would
        await page.check('input[name="segment"][value="language:en"]')
        await page.select_option("#bc-combine", "any")
        await expect(estimate.locator(".bc-line-count")).to_have_text("6人に届きます", timeout=WAIT_MS)
        await page.uncheck('input[name="segment"][value="language:en"]')
        await page.select_option("#bc-card", "help")
        await expect(estimate.locator(".bc-line-count")).to_have_text("4人に届きます", timeout=WAIT_MS)
        await expect(page.locator("#bc-preview .fx-bubble .fx-button").first).to_have_text("友だちを招待する")
        await expect(estimate).to_contain_text("吹き出し2個")

        # confirm (the count again, the bubble drawn), send, and watch it reach done
        await page.click("#bc-review")
        await expect(page.locator("#bc-confirm-count")).to_have_text("4人に送信します。", timeout=WAIT_MS)
        await expect(page.locator("#bc-preview .fx-bubble")).to_be_visible()
        await page.click("#bc-edit")  # back to edit: the draft is still there, counted and drawn again
        await expect(page.locator("#bc-text")).to_have_value("{name}、週末はポイント2倍！", timeout=WAIT_MS)
        await expect(page.locator("#bc-card")).to_have_value("help")
        await expect(page.locator('input[name="segment"][value="language:ja"]')).to_be_checked()
        await expect(estimate.locator(".bc-line-count")).to_have_text("4人に届きます", timeout=WAIT_MS)
        await expect(page.locator("#bc-preview .fx-bubble")).to_be_visible()
        await page.click("#bc-review")
        await expect(page.locator("#bc-confirm-count")).to_have_text("4人に送信します。", timeout=WAIT_MS)
        await page.click("#bc-send")
        await expect(page.locator("#bc-status")).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        await expect(page.locator("#bc-count")).to_have_text("4 / 4人")
        await expect(page.locator("#bc-cancel-form")).to_be_hidden()
        got = reached(bot, "週末はポイント2倍！")
        assert set(got) == set(japanese) and set(got.values()) == {1}, got

        # LINE's monthly limit: the job pauses; resumed once the quota allows, it finishes, nobody twice
        bot.platform.monthly_limit_reached = True
        await page.goto(f"{bot.url}/admin/broadcasts")
        await page.fill("#bc-text", "月末のお知らせ")
        await page.check("#bc-everyone")
        await expect(estimate.locator(".bc-line-count")).to_have_text("6人に届きます", timeout=WAIT_MS)
        await page.click("#bc-review")
        await page.click("#bc-send")
        await expect(page.locator("#bc-status")).to_have_attribute("data-status", "paused", timeout=WAIT_MS)
        await expect(page.locator("#bc-paused-note")).to_be_visible()
        bot.platform.monthly_limit_reached = False
        await page.click("#bc-resume")
        await expect(page.locator("#bc-status")).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        got = reached(bot, "月末のお知らせ")
        assert set(got) == set(uids) and set(got.values()) == {1}, got

        # scheduled, then cancelled from its page (after the confirm dialog)
        await page.goto(f"{bot.url}/admin/broadcasts")
        await page.fill("#bc-text", "来月のお知らせ")
        await page.check('input[name="segment"][value="birthday"]')
        await page.check("#bc-later")
        shop_now = datetime.now(bot.services.program.rules.timezone)
        await page.fill("#bc-at", (shop_now + timedelta(days=2)).strftime("%Y-%m-%dT10:00"))
        await page.click("#bc-review")
        await expect(page.locator("#bc-send")).to_have_text("0人への配信を予約する", timeout=WAIT_MS)
        await page.click("#bc-send")
        await expect(page.locator("#bc-status")).to_have_attribute("data-status", "scheduled", timeout=WAIT_MS)
        await page.click("#bc-cancel")
        await expect(page.locator("#bc-status")).to_have_attribute("data-status", "cancelled", timeout=WAIT_MS)
        await page.goto(f"{bot.url}/admin/broadcasts")
        await expect(page.locator("#bc-jobs tbody tr")).to_have_count(3)
        assert errors == []
    assert not bot.platform.violations
