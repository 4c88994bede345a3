"""The dashboard's overview, referrals and rewards pages for `make screens` (linesim/screens.py calls take()).

The overview charts days, so the shop first gets a history: 60 days of members joining, invites and referrals,
orders and claims, made through the program's own calls with its clock set back to each day (nothing is
written around them), on top of what the console's members did today. One referral waits for review: its
friend's first order carries a fingerprint of the referrer's own order, sent through the admin API. A reward
runs low (the admin API takes stock away). Then an owner signs in through the form and each page is pictured
in Japanese and English on a desk (docs/screens/dash-<page>-<lang>.png, the whole page), the overview also on a
phone (what its screen shows first).
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from linesim.platform import new_user_id
from linesim.screens_broadcasts import sign_in

PAGES = {"overview": "/admin/?days=30", "referrals": "/admin/referrals", "rewards": "/admin/rewards",
         "rules": "/admin/rewards/rules"}
PHONE = {"width": 390, "height": 800}  # as the other dashboard pictures (linesim/screens.py)
DESK = {"width": 1000, "height": 700}
HISTORY_DAYS = 60
WAIT_MS = 30_000


def names(languages: tuple[str, ...]) -> list[str]:
    """Every picture take() makes, without the directory."""
    return ([f"dash-{page}-{lang}.png" for page in (*PAGES, "referral") for lang in languages]
            + ["dash-overview-phone-ja.png"])


async def history(services: Any, days: int = HISTORY_DAYS, seed: int = 14) -> None:
    """A growing shop's last `days` days, through the program's calls with its (and the catalog's) clock moved."""
    rng = random.Random(seed)
    program, catalog = services.program, services.catalog
    clocks = program.clock, catalog.clock
    now = time.time()
    members: list[str] = []
    moment = [now]
    program.clock = catalog.clock = lambda: moment[0]
    try:
        for back in range(days, 0, -1):
            growth = 1 + 2 * (days - back) / days  # three times the activity by the end
            day = now - back * 86_400

            def at(hours: float, day: float = day) -> int:
                moment[0] = day + hours * 3600
                return int(moment[0] * 1000)

            for _ in range(rng.randint(1, 3)):
                uid = new_user_id()
                ms = at(rng.uniform(9, 20))
                await program.see(uid, "follow", ms)
                await program.welcome_points(uid, ms)
                members.append(uid)
            at(12)
            shown = int(rng.randint(4, 9) * growth)
            await program.count("invites_shown", shown)
            await program.count("shares", rng.randint(1, max(1, shown // 2)))
            await program.count("invite_pages_opened", rng.randint(shown // 2, shown))
            await program.count("liff_pages_opened", rng.randint(0, shown // 3))
            for _ in range(rng.randint(0, int(2 * growth))):
                referrer, friend = rng.choice(members), new_user_id()
                ms = at(rng.uniform(10, 18))
                await program.see(friend, "follow", ms)
                await program.welcome_points(friend, ms)
                if (await program.attribute(friend, await program.invite_code(referrer), op=f"screens-{friend}")).ok \
                        and rng.random() < 0.7:
                    ms = at(rng.uniform(19, 23))
                    await program.record_purchase(f"screens-{friend}", friend, rng.choice((1800, 2600, 3400, 5200)),
                                                  ms)
                members.append(friend)
            wanted = rng.randint(0, int(2 * growth))  # coffees claimed by members with the points for one
            for uid in rng.sample(members, k=min(len(members), 12)):
                if not wanted:
                    break
                at(rng.uniform(12, 20))
                offer = await catalog.show(uid, "coffee")
                if offer is not None and offer.refusal is None and (await catalog.confirm(uid, offer.claim_id)).ok:
                    wanted -= 1
    finally:
        program.clock, catalog.clock = clocks


async def held_for_review(phones: Any) -> None:
    """A referral held for review, as the console and the admin API make one."""
    referrer = await phones.add("たけし", "ja")
    await phones.act(referrer, "follow")
    friend = await phones.add("みお", "ja")
    await phones.act(friend, "follow")
    code = await phones.stack.services.program.invite_code(referrer)
    await phones.say(friend, code)
    for order, uid, amount in (("screens-own", referrer, 2400), ("screens-first", friend, 3600)):
        await phones.call("POST", "/api/v1/conversions", {"order_id": order, "user_id": uid, "amount": amount,
                                                          "fingerprint": "a94f3c0d9e1b7720"}, admin=True)


async def take(phones: Any, browser: Any, out: Path, languages: tuple[str, ...], email: str) -> list[Path]:
    """The pictures, after the history, a review and a reward running low, signed in as the owner `email`
    (made, or given a new password, here)."""
    import secrets

    from bot.web.dashboard.accounts import StaffAccounts

    stack, services = phones.stack, phones.stack.services
    await history(services)
    await held_for_review(phones)
    await phones.call("POST", "/api/v1/rewards/tote/stock", {"add": -46}, admin=True)
    accounts = StaffAccounts(services.redis, services.program.now_ms)
    password = secrets.token_urlsafe(12)
    if await accounts.get(email) is None:
        await accounts.add(email, "owner", password)
    else:
        await accounts.reset_password(email, password)
    friend = next(uid for uid, name in phones.names.items() if name == "みお")
    status, _ = await services.program.referrals.of_friend(friend)
    if status != "review":
        raise RuntimeError(f"the screens' referral is {status}, not held for review")
    made: list[Path] = []
    for lang in languages:
        for viewport, suffix in ((DESK, ""), (PHONE, "-phone")):
            if suffix and lang != "ja":
                continue
            context = await browser.new_context(viewport=viewport, locale="ja-JP" if lang == "ja" else "en-US",
                                                device_scale_factor=1, is_mobile=bool(suffix), has_touch=bool(suffix))
            page = await context.new_page()
            await sign_in(page, f"{stack.bot_url}/admin/login", email, password, "#signout")
            shots = {"overview": PAGES["overview"]} if suffix else {**PAGES, "referral": f"/admin/referrals/{friend}"}
            for name, path in shots.items():
                await page.goto(f"{stack.bot_url}{path}")
                if name == "overview":
                    await page.wait_for_selector("html[data-charts]", timeout=WAIT_MS)
                made.append(out / f"dash-{name}{suffix}-{lang}.png")
                await page.screenshot(path=str(made[-1]), full_page=not suffix, animations="disabled")
            await context.close()
    return made
