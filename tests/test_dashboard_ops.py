"""The dashboard's overview, referrals and rewards pages (dash-ops): the overview's figures on a scripted program
come out exactly, this period and the one before; a stock form sent twice adds once; the review evidence;
every POST refused without a session, without CSRF or with a lower role, changing nothing."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from linesim.platform import new_user_id
from rewards import keys as rkeys
from rewards import overview
from rewards.catalog import Catalog
from rewards.errors import ProgramError
from rewards.program import Program
from rewards.review import ReferralReview
from tests.support.dashboard import StaffClient, start_dashboard
from tests.support.harness import Bot, converse
from tests.support.rules_helpers import Clock, program_for, variant
from tests.test_admin_api import follow, points_of
from tests.test_budget import with_cap
from tests.test_experiments import EXPERIMENT

DAY = 86_400


@pytest_asyncio.fixture
async def scripted(clean_redis: str, tmp_path: Path) -> AsyncIterator[tuple[Program, Clock]]:
    """A program whose points cost 2 yen each (so yen and points differ), its clock at 2026-03-02 10:00 JST."""
    clock = Clock()
    rules = variant(tmp_path, points__point_value_yen="2")
    program = await program_for(clean_redis, rules, clock)
    clock.now = datetime(2026, 3, 2, 10, tzinfo=program.rules.timezone).timestamp()
    yield program, clock
    await program.redis.aclose()


async def join(program: Program, clock: Clock, at: float) -> str:
    clock.now = at
    uid = new_user_id()
    await program.see(uid, "follow", clock.ms)
    await program.welcome_points(uid, clock.ms)
    return uid


async def refer_and_buy(program: Program, clock: Clock, referrer: str, friend: str, bought_at: float, order: str,
                        fingerprint: str | None = None) -> None:
    clock.now = bought_at - 3600  # the code an hour before the order
    assert (await program.attribute(friend, await program.invite_code(referrer), op=f"ev-{order}")).ok
    clock.now = bought_at
    await program.record_purchase(order, friend, 2000, clock.ms, fingerprint=fingerprint)


async def issued_between(program: Program, members: list[str], start_ms: int, end_ms: int) -> int:
    """Points earned in [start, end), read from the ledgers (what the counters must agree with)."""
    issued = 0
    for uid in members:
        issued += sum(entry["delta"] for entry in await program.ledger(uid)
                      if entry["delta"] > 0 and start_ms <= entry["at"] < end_ms)
    return issued


async def test_the_overview_of_a_scripted_program_is_exact_for_both_periods(scripted: Any) -> None:
    program, clock = scripted
    t0 = clock.now  # 2026-03-02 10:00: the previous 7-day period is 02-26..03-04, this one 03-05..03-11
    a = await join(program, clock, t0)
    d = await join(program, clock, t0 + DAY)
    for _ in range(3):
        await program.count("invites_shown")  # what handlers/invite.py counts, on 03-03
    await program.count("invite_pages_opened", 2)
    b = await join(program, clock, t0 + DAY + 60)
    await refer_and_buy(program, clock, a, b, t0 + 2 * DAY, "o-b")  # 03-04: A's first, 2 days after joining
    # this period
    c = await join(program, clock, t0 + 3 * DAY)
    clock.now = t0 + 4 * DAY
    await program.count("shares", 4)
    await program.count("invite_pages_opened", 2)
    await program.count("liff_pages_opened")
    await refer_and_buy(program, clock, a, c, t0 + 5 * DAY, "o-c")  # 03-07
    e = await join(program, clock, t0 + 6 * DAY)
    await refer_and_buy(program, clock, d, e, t0 + 7 * DAY, "o-e")  # 03-09: D's first, 6 days after joining
    clock.now = t0 + 7 * DAY + 60
    await program.record_purchase("o-d", d, 1000, clock.ms, fingerprint="fp-d")  # D's own order
    f = await join(program, clock, t0 + 7 * DAY + 120)
    await refer_and_buy(program, clock, d, f, t0 + 8 * DAY, "o-f", fingerprint="fp-d")  # 03-10: held for review
    clock.now = t0 + 9 * DAY  # 03-11: A claims a coffee (300 points)
    catalog = Catalog(program.redis, program, program.rules, clock=clock)
    offer = await catalog.show(a, "coffee")
    assert offer is not None and (await catalog.confirm(a, offer.claim_id)).ok

    view = await overview.overview(program, 7)

    assert view.dates[0] == "2026-03-05" and view.dates[-1] == "2026-03-11"
    assert view.previous_dates[0] == "2026-02-26" and view.previous_dates[-1] == "2026-03-04"
    assert view.members == 6
    m = view.metrics
    totals = {name: (m[name].total, m[name].previous_total) for name in m}
    assert [metric.name for metric in view.funnel] == ["invites_shown", "shares", "pages_opened", "attributions",
                                                       "first_purchases", "completions"]
    assert totals["invites_shown"] == (0, 3)
    assert totals["shares"] == (4, 0)
    assert totals["pages_opened"] == (3, 2)
    assert totals["attributions"] == (3, 1)  # C, E, F / B
    assert totals["first_purchases"] == (3, 1)  # F's first order counts though it waits for review
    assert totals["completions"] == (2, 1)
    assert totals["k_factor"] == (round(2 / 6, 4), round(1 / 6, 4))
    assert totals["viral_cycle_days"] == (6.0, 2.0)
    assert totals["referred_revenue_yen"] == (6000, 2000)
    assert totals["rewards_claimed"] == (1, 0)
    assert totals["points_spent"] == (300, 0) and m["points_spent"].yen == 600
    everyone = [a, b, c, d, e, f]
    start = int(datetime(2026, 3, 5, tzinfo=program.rules.timezone).timestamp() * 1000)
    issued_now = await issued_between(program, everyone, start, start + 7 * DAY * 1000)
    issued_before = await issued_between(program, everyone, start - 7 * DAY * 1000, start)
    assert totals["points_issued"] == (issued_now, issued_before) and issued_now > 0 and issued_before > 0
    assert (m["points_issued"].yen, m["points_issued"].previous_yen) == (2 * issued_now, 2 * issued_before)
    assert totals["points_expired"] == (0, 0)
    # by day: each day in its place, the previous period's day for day
    day = {d: i for i, d in enumerate(view.dates)}
    assert m["completions"].current == [0, 0, 1, 0, 1, 0, 0]
    assert m["completions"].previous == [0, 0, 0, 0, 0, 0, 1]
    assert m["viral_cycle_days"].current[day["2026-03-09"]] == 6.0
    assert m["viral_cycle_days"].current[day["2026-03-07"]] is None  # A's first completion was before
    assert m["k_factor"].current[day["2026-03-07"]] == round(1 / 6, 4)
    assert m["pages_opened"].current[day["2026-03-06"]] == 3
    assert m["shares"].current[day["2026-03-06"]] == 4
    assert m["first_purchases"].current[day["2026-03-10"]] == 1
    assert view.as_dict()["metrics"]["completions"]["total"] == 2
    with pytest.raises(ValueError):
        await overview.overview(program, 8)  # only the page's periods


async def test_a_stock_form_sent_twice_adds_once_and_is_audited_once(scripted: Any) -> None:
    program, clock = scripted
    catalog = Catalog(program.redis, program, program.rules, clock=clock)
    reward = program.rules.reward("coffee")
    assert reward is not None and reward.stock == 500
    before, after = await catalog.change_stock("coffee", 20, "web:owner@example.com", seen_limit=500)
    assert before is not None and (before.limit, after.limit, after.left) == (500, 520, 520)
    with pytest.raises(ProgramError) as again:
        await catalog.change_stock("coffee", 20, "web:owner@example.com", seen_limit=500)
    assert again.value.code == "STOCK_CHANGED"
    assert (await catalog.stock(reward)).limit == 520
    with pytest.raises(ProgramError) as too_many:
        await catalog.change_stock("coffee", -600, "web:owner@example.com", seen_limit=520)
    assert too_many.value.code == "NOT_ENOUGH_STOCK"
    audit = await program.redis.xrange("shokai:audit")
    assert [(e[b"who"], e[b"what"], e[b"add"], e[b"before"], e[b"after"]) for _, e in audit] == [
        (b"web:owner@example.com", b"add_stock", b"20", b"500", b"520")]


async def test_the_evidence_of_a_held_referral(scripted: Any) -> None:
    program, clock = scripted
    t0 = clock.now
    referrer = await join(program, clock, t0)
    await program.record_purchase("own", referrer, 1000, clock.ms, fingerprint="fp-home")
    friend = await join(program, clock, t0 + 600)
    await refer_and_buy(program, clock, referrer, friend, t0 + DAY, "first", fingerprint="fp-home")
    review = ReferralReview(program)
    evidence = await review.evidence(friend)
    assert evidence is not None and evidence.status == "review"
    assert evidence.referrer.user_id == referrer and evidence.friend.user_id == friend
    assert evidence.shared_fingerprints == ["fp-home"]
    assert evidence.order_id == "first" and evidence.order_yen == 2000
    assert evidence.follow_to_attribution_ms == (DAY - 3600 - 600) * 1000
    assert evidence.attribution_to_purchase_ms == 3600 * 1000
    assert evidence.referrer_referrals == {"review": 1} and not evidence.mutual
    assert evidence.decided_by is None
    await review.approve(friend, "web:staff@example.com")
    decided = await review.evidence(friend)
    assert decided is not None and decided.status == "completed" and decided.decided_by == "web:staff@example.com"
    assert decided.decided_at == clock.ms and decided.referrer_referrals == {"completed": 1}
    assert await review.evidence(referrer) is None  # never referred


# ---- the pages over HTTP -----------------------------------------------------------------------------
async def review_referral(bot: Bot, fingerprint: str = "fp-hash-1") -> tuple[str, str]:
    """A refers B by code (typed: the dashboard's bot has an http PUBLIC_BASE_URL, which the invite card's QR
    image may not use); A's own order and then B's first order carry the same fingerprint: B's referral waits."""
    a, b = new_user_id(), new_user_id()
    await follow(bot, a)
    await follow(bot, b)
    code = await bot.services.program.invite_code(a)
    await converse(bot.platform, b, bot.platform.text(b, code))
    for order, uid, amount in ((f"a-{a[-6:]}", a, 1000), (f"b-{b[-6:]}", b, 2000)):
        status, body = await bot.admin("POST", "/api/v1/conversions", {"order_id": order, "user_id": uid,
                                                                       "amount": amount, "fingerprint": fingerprint})
        assert status == 200, body
    assert (await bot.services.program.referrals.of_friend(b)) == ("review", a)
    await bot.idle()
    return a, b


PAGES = ("/admin/", "/admin/?days=7", "/admin/?days=90", "/admin/referrals", "/admin/referrals?status=completed",
         "/admin/rewards", "/admin/rewards/rules")
DECIDE_FORM = re.compile(r'<form method="post" action="/admin/referrals/U[0-9a-f]{32}/(approve|void)"')
STOCK_FORM = re.compile(r'<form method="post" action="/admin/rewards/[a-z0-9_-]+/stock"')


async def test_each_page_for_each_role_and_only_the_allowed_forms(dash_bot: Bot, staff_clients) -> None:
    bot = dash_bot
    _, friend = await review_referral(bot)
    seen: dict[str, dict[str, str]] = {}
    for role in ("viewer", "staff", "owner"):
        client: StaffClient = await staff_clients(bot, role)
        seen[role] = {}
        for path in (*PAGES, f"/admin/referrals/{friend}"):
            status, page = await client.get(path, headers={"Accept-Language": "en"} if role == "staff" else {})
            assert status == 200, (role, path, page[:300])
            assert "http://" not in page.replace(bot.url, "").replace("http://www.w3.org", ""), (role, path)
            seen[role][path] = page
    for role, pages in seen.items():
        everything = "".join(pages.values())
        assert bool(DECIDE_FORM.search(everything)) == (role != "viewer"), role
        assert bool(STOCK_FORM.search(everything)) == (role == "owner"), role
    queue = seen["owner"]["/admin/referrals"]
    assert friend in queue and "fp-hash-1"[:12] in queue and "確認待ち" in queue  # Japanese first
    assert "In review" in seen["staff"]["/admin/referrals"]  # English by the browser's language
    overview_page = seen["owner"]["/admin/"]
    assert 'id="overview-data"' in overview_page and "/admin/static/uPlot.iife.min.js" in overview_page
    assert "K係数" in overview_page and "バイラルサイクル" in overview_page
    rules_page = seen["owner"]["/admin/rewards/rules"]
    assert "ブロンズ" in rules_page and "500 pt（¥500）" in rules_page  # a tier label; the referrer's points in yen
    assert (await seen_status(bot, "/admin/referrals/U" + "0" * 32, staff_clients)) == 404


async def seen_status(bot: Bot, path: str, staff_clients) -> int:
    client = await staff_clients(bot, "viewer")
    return (await client.get(path))[0]


async def state(bot: Bot, friend: str, referrer: str) -> tuple:
    """What a refused POST must leave as it was: the referral, both balances, the stock, the audit log."""
    program = bot.services.program
    coffee = program.rules.reward("coffee")
    assert coffee is not None
    return ((await program.referrals.of_friend(friend)), await points_of(bot, friend), await points_of(bot, referrer),
            (await bot.services.catalog.stock(coffee)).limit, int(await bot.services.redis.xlen(rkeys.AUDIT)))


async def test_posts_are_refused_without_session_csrf_or_role_and_a_double_approve_pays_once(
        dash_bot: Bot, staff_clients) -> None:
    bot = dash_bot
    referrer, friend = await review_referral(bot)
    await bot.idle()
    anonymous = await staff_clients(bot, "viewer", email="nobody@example.test", sign_in=False)
    viewer, staff, owner = [await staff_clients(bot, role) for role in ("viewer", "staff", "owner")]
    posts = [(f"/admin/referrals/{friend}/approve", {"reason": "ok"}, viewer),
             (f"/admin/referrals/{friend}/void", {"reason": "no"}, viewer),
             ("/admin/rewards/coffee/stock", {"add": "5", "seen_limit": "500"}, staff)]
    before = await state(bot, friend, referrer)
    assert before[0] == ("review", referrer)
    # the same evidence for machines: GET /api/v1/referrals/{friend_id}
    status, evidence = await bot.admin("GET", f"/api/v1/referrals/{friend}")
    assert status == 200 and isinstance(evidence, dict), evidence
    assert evidence["status"] == "review" and evidence["referrer_id"] == referrer and evidence["order_yen"] == 2000
    assert evidence["shared_fingerprints"] == ["fp-hash-1"] and evidence["friend"]["fingerprints"] == ["fp-hash-1"]
    assert evidence["referrer"]["orders"] == 1 and evidence["referrer_referrals"] == {"review": 1}
    assert (await bot.admin("GET", f"/api/v1/referrals/{referrer}"))[0] == 404  # never referred
    assert (await bot.admin("GET", "/api/v1/referrals/nobody"))[0] == 400
    for path, form, lower in posts:
        assert (await anonymous.post(path, form, csrf=False))[0] == 401, path
        assert (await owner.post(path, form, csrf=False))[0] == 403, path
        assert (await owner.post(path, {**form, "csrf": "not-the-token"}))[0] == 403, path
        assert (await lower.post(path, form))[0] == 403, path
        assert await state(bot, friend, referrer) == before, path

    # staff approve with two presses at once: one decision, one payment, one audit entry, each member told once
    sent = len(bot.platform.calls)
    answers = await asyncio.gather(*(staff.post(f"/admin/referrals/{friend}/approve", {"reason": "same card"})
                                     for _ in range(2)))
    assert [a[0] for a in answers] == [303, 303]
    assert sorted(a[2] or "" for a in answers) == [f"/admin/referrals/{friend}?done=already",
                                                    f"/admin/referrals/{friend}?done=approve"]
    await bot.idle()
    assert (await bot.services.program.referrals.of_friend(friend))[0] == "completed"
    assert await points_of(bot, referrer) == before[2] + 500 and await points_of(bot, friend) == before[1] + 300
    audit = [e for _, e in await bot.services.redis.xrange(rkeys.AUDIT) if e[b"what"] == b"approve_referral"]
    assert [(e[b"who"], e[b"reason"]) for e in audit] == [(b"web:staff@example.test", b"same card")]
    pushed = [c for c in bot.platform.calls[sent:] if c.status == 200 and c.endpoint == "push"]
    assert sorted(len([c for c in pushed if who in c.to]) for who in (friend, referrer)) == [1, 1]
    status, page = await staff.get(f"/admin/referrals/{friend}?done=approve")
    assert status == 200 and 'data-status="completed"' in page and "web:staff@example.test" in page
    assert not DECIDE_FORM.search(page)  # decided: no buttons left
    # pressed again later (a page open in another tab): nothing changes, nobody is told again
    sent = len(bot.platform.calls)
    assert (await staff.post(f"/admin/referrals/{friend}/approve"))[2] == f"/admin/referrals/{friend}?done=already"
    assert (await staff.post(f"/admin/referrals/{friend}/void"))[2] == f"/admin/referrals/{friend}?error=NOT_VOIDABLE"
    await bot.idle()
    assert not [c for c in bot.platform.calls[sent:] if c.status == 200 and c.endpoint == "push"]
    assert await points_of(bot, referrer) == before[2] + 500

    # the owner's stock form sent twice: added once, the second told the stock changed
    first, second = [await owner.post("/admin/rewards/coffee/stock", {"add": "5", "seen_limit": "500"})
                     for _ in range(2)]
    assert first[2] == "/admin/rewards?done=coffee&add=5&told=0#reward-coffee"
    assert second[2] == "/admin/rewards?reward=coffee&error=STOCK_CHANGED#reward-coffee"
    for bad in ({"add": "0", "seen_limit": "505"}, {"add": "1e3", "seen_limit": "505"}, {"add": "５", "seen_limit": "505"},
                {"add": "5"}, {"add": "-9999999", "seen_limit": "505"}):
        assert "error=INVALID_ADD" in ((await owner.post("/admin/rewards/coffee/stock", bad))[2] or ""), bad
    assert (await owner.post("/admin/rewards/tote/stock", {"add": "-51", "seen_limit": "50"}))[2] == \
        "/admin/rewards?reward=tote&error=NOT_ENOUGH_STOCK#reward-tote"
    coffee = bot.services.program.rules.reward("coffee")
    assert coffee is not None and (await bot.services.catalog.stock(coffee)).limit == 505
    stock_audit = [e for _, e in await bot.services.redis.xrange(rkeys.AUDIT) if e[b"what"] == b"add_stock"]
    assert [(e[b"who"], e[b"add"]) for e in stock_audit] == [(b"web:owner@example.test", b"5")]
    status, page = await owner.get("/admin/rewards?done=coffee&add=5&told=0")
    assert status == 200 and 'id="stock-result"' in page and "505" in page


async def test_a_referral_flagged_as_a_ring_is_shown_and_cleared_by_approving(dash_bot: Bot, staff_clients) -> None:
    """[rings] flag mode marks a referral without holding it (rewards/ring_watch.py writes these fields); the page
    shows the ring and its approve clears the flag, as the API's does, paying nobody."""
    bot = dash_bot
    a, b = new_user_id(), new_user_id()
    await follow(bot, a)
    await follow(bot, b)
    await converse(bot.platform, b, bot.platform.text(b, await bot.services.program.invite_code(a)))
    await bot.services.redis.hset(rkeys.referral(b), mapping={"ring": "g-1", "ring_score": "0.82",
                                                               "ring_reasons": "cycle, shared fingerprint"})
    staff = await staff_clients(bot, "staff")
    status, queue = await staff.get("/admin/referrals")
    assert status == 200 and b in queue  # listed with the review queue though still pending
    status, page = await staff.get(f"/admin/referrals/{b}")
    assert status == 200 and 'id="ring"' in page and "g-1" in page and "cycle, shared fingerprint" in page
    before = await points_of(bot, a), await points_of(bot, b)
    assert (await staff.post(f"/admin/referrals/{b}/approve"))[2] == f"/admin/referrals/{b}?done=ring_cleared"
    assert await bot.services.program.referrals.of_friend(b) == ("pending", a)
    assert (await points_of(bot, a), await points_of(bot, b)) == before
    audit = [e for _, e in await bot.services.redis.xrange(rkeys.AUDIT) if e[b"what"] == b"dismiss_ring"]
    assert [e[b"who"] for e in audit] == [b"web:staff@example.test"]
    status, queue = await staff.get("/admin/referrals")
    assert b not in queue  # off the queue once cleared


async def test_the_overview_shows_the_months_budget_and_each_experiments_arms(
        bot_with: Any, staff_clients, tmp_path: Path) -> None:
    """Issue 15 on the dashboard: the month's referral budget against its cap, and an offer experiment's arms with
    their intervals and whether the difference is significant yet (nothing happened yet: 0 of the cap, no figures)."""
    rules = tmp_path / "business.toml"
    rules.write_text(with_cap(variant(tmp_path, EXPERIMENT.format(control=50, generous=50)).read_text("utf-8"),
                              120_000), encoding="utf-8")
    bot = await start_dashboard(bot_with, rewards_config=rules)
    viewer: StaffClient = await staff_clients(bot, "viewer")
    status, html = await viewer.get("/admin/")
    assert status == 200
    assert 'data-kind="referral"' in html and "¥0 / ¥120,000（0%）" in html
    assert 'data-experiment="friend-500-vs-1000"' in html
    assert 'data-arm="control"' in html and 'data-arm="generous"' in html
    assert "紹介した人 800 pt / 友だち 1000 pt" in html and "まだ有意な差はありません" in html
