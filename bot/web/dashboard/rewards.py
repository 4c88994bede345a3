"""/admin/rewards: the reward catalog with its stock, claims and low-stock warnings; the owner changes stock here.
/admin/rewards/rules: the rules in force, as loaded (they stay in the rules file).

Stock goes through Catalog.change_stock (audited under "web:EMAIL", as the admin API's under "admin-api") and
bot.notices.after_stock_added (members waiting for it told once). The form carries the stock limit it showed:
sent twice, or after someone else's change, it is refused as STOCK_CHANGED instead of adding again.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from bot import notices
from bot.web.dashboard import auth
from bot.web.dashboard.render import language, refusal, render
from rewards import stats
from rewards.errors import ProgramError
from rewards.inventory import Stock, stock_level
from rewards.rules import Campaign, Caps, Reward, Rules

NAV = [("/admin/rewards", "ops_nav_rewards", "read")]
MAX_STOCK_CHANGE = 1_000_000  # as the admin API's
RECENT_DAYS = 30
REWARD_ID = re.compile(r"^[a-z0-9_\-]{1,32}$")
WHOLE = re.compile(r"^-?[0-9]{1,9}$")  # ASCII digits only: not "１０", "²" or "1e3"
ERRORS = ("STOCK_CHANGED", "NOT_ENOUGH_STOCK", "UNLIMITED_STOCK", "UNKNOWN_REWARD", "INVALID_ADD")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    reward: Reward
    stock: Stock
    level: str  # out | low | ok | unlimited (rewards/inventory.py stock_level)
    recent_claims: int  # over RECENT_DAYS
    waiting: int  # members told when it is back


@auth.requires("read")
async def catalog(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """GET /admin/rewards: every reward of the rules, sold-out and low first in the warning."""
    s = auth.services(request)
    rewards = list(s.program.rules.rewards)
    stocks, recent, waiting = await asyncio.gather(
        s.catalog.stocks_of(rewards), stats.claims_by_reward(s.program, RECENT_DAYS),
        asyncio.gather(*(s.catalog.waiting_for_stock(r.id) for r in rewards)))
    rows = [Row(r, st, stock_level(st), recent.get(r.id, 0), len(w))
            for r, st, w in zip(rewards, stocks, waiting, strict=True)]
    done = request.query.get("done")
    error = request.query.get("error")
    lang = language(request)
    return render(request, staff, "rewards.html", rows=rows, recent_days=RECENT_DAYS,
                  tier_label=lambda name: s.program.rules.tier_label(name, lang),
                  warned=[row for row in rows if row.level in ("out", "low")],
                  may_edit=staff.may("edit_stock"), done=s.program.rules.reward(done) if done else None,
                  added=_whole(request.query.get("add")), told=_whole(request.query.get("told")),
                  error=error if error in ERRORS else None, error_reward=request.query.get("reward"))


def _whole(value: str | None) -> int | None:
    return int(value) if value and WHOLE.fullmatch(value) else None


@auth.requires("edit_stock")
async def change_stock(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """POST /admin/rewards/{reward_id}/stock (form: csrf, add, seen_limit): add (or, negative, remove) stock."""
    reward_id = request.match_info["reward_id"]
    if not REWARD_ID.fullmatch(reward_id):
        return await refusal(request, staff, 404)
    form = await request.post()
    add, seen = _whole(str(form.get("add", "")).strip()), _whole(str(form.get("seen_limit", "")).strip())
    back = f"/admin/rewards?reward={reward_id}"
    if add is None or add == 0 or abs(add) > MAX_STOCK_CHANGE or seen is None or seen < 0:
        raise web.HTTPSeeOther(f"{back}&error=INVALID_ADD#reward-{reward_id}")
    s = auth.services(request)
    try:
        _, stock = await s.catalog.change_stock(reward_id, add, staff.who, seen_limit=seen)
    except ProgramError as exc:
        log.info("dashboard: %s could not change the stock of %s by %d: %s", staff.email, reward_id, add, exc.code)
        code = exc.code if exc.code in ERRORS else "UNKNOWN_REWARD"
        raise web.HTTPSeeOther(f"{back}&error={code}#reward-{reward_id}") from exc
    told = await notices.after_stock_added(s, reward_id, add, stock)
    raise web.HTTPSeeOther(f"/admin/rewards?done={reward_id}&add={add}&told={told}#reward-{reward_id}")


# ---- the rules in force ---------------------------------------------------------------------
@dataclass(frozen=True)
class EarnRow:
    rule: str  # signup, profile, birthday, first_purchase, events.<name>
    points: int
    yen: int
    caps: Caps


def campaign_state(campaign: Campaign, now: datetime) -> str:
    return "running" if campaign.starts <= now < campaign.ends else ("upcoming" if now < campaign.starts else "ended")


def earn_rows(rules: Rules) -> list[EarnRow]:
    return [EarnRow(rule.name, rule.points, rules.yen(rule.points), rule.caps) for rule in rules.earn.values()]


@auth.requires("read")
async def rules_in_force(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """GET /admin/rewards/rules: what the loaded rules say, with every points figure also in yen."""
    s = auth.services(request)
    rules = s.program.rules
    now = datetime.fromtimestamp(s.program.now_ms() / 1000, rules.timezone)
    campaigns = [(c, campaign_state(c, now)) for c in rules.campaigns]
    return render(request, staff, "rules.html", rules=rules, earn=earn_rows(rules), campaigns=campaigns,
                  rules_file=s.settings.rewards_config.name)


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/rewards", catalog)
    app.router.add_get("/admin/rewards/rules", rules_in_force)
    app.router.add_post("/admin/rewards/{reward_id}/stock", change_stock)
