"""The program's numbers over the last N days, from the per-day counters rewards/counters.py keeps.

Definitions (also in the README):
- funnel: shares (completed liff.shareTargetPicker sends) and invites shown → invite pages opened (plain and
  LIFF) → codes sent and LIFF attributions (awaiting_follow: attributed before the follow) → referrals
  pending → first purchases (a referred friend's first order) → completed.
- conversion rate: referrals completed ÷ invite pages opened, over the period.
- K-factor: referrals completed in the period ÷ members (per day: that day's completed ÷ members).
- referrals per referrer: completed referrals ÷ members with at least one (all time).
- viral cycle time: median time from a member's first sighting to their first completed referral, over the
  members whose first completed referral falls in the period.
"""
from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

from rewards import buckets, engine, keys
from rewards.budget import KINDS
from rewards.program import Program

MAX_DAYS = 90
TOP = 10
DAY_MS = 86_400_000

# The per-day counters shown for every day (missing ones read 0).
DAILY = ("invites_shown", "invite_pages_opened", "codes_sent", "referrals_pending", "referrals_completed",
         "referrals_review", "referrals_voided", "first_purchases", "orders", "revenue_yen", "referred_revenue_yen",
         "points_issued", "points_spent", "points_expired", "rewards_claimed",
         # invites through LIFF: pages opened in LINE, shares, people waiting for their follow, attributions
         "liff_pages_opened", "shares", "awaiting_follow", "liff_attributions")


# The per-day counters that count points: each row and the totals show their yen beside them ([points]
# point_value_yen: what a point costs the shop), as `<name>_yen`.
POINT_COUNTERS = ("points_issued", "points_spent", "points_expired")
BALANCE_CHUNK = 1000
BALANCE_FRESH_MS = 5 * 60_000  # the outstanding points are summed again when older than this


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def outstanding_points(program: Program) -> int:
    """Every member's points (spendable, less any debt) and points on hold, summed from their own records: the
    points the shop still owes. One pipelined round trip per BALANCE_CHUNK members (~8 s for 100,000 members on
    the shared test machine: docs/benchmarks.md), so the report keeps it a few minutes (`owed_now`)."""
    redis = program.redis
    members = await buckets.member_ids(redis)
    total = 0
    for start in range(0, len(members), BALANCE_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for uid in members[start:start + BALANCE_CHUNK]:
                pipe.hmget(keys.member(uid), [keys.field("points"), keys.field("pending_points")])
            for points, pending in await pipe.execute():
                total += int(points or 0) + int(pending or 0)
    return total


async def owed_now(program: Program) -> tuple[int, int]:
    """(outstanding points, when they were summed, ms): summed again when older than BALANCE_FRESH_MS, else the
    last sum (kept in keys.STATS_OUTSTANDING), so the staff card and the stats stay quick on a large program."""
    now = program.now_ms()
    kept = await program.redis.get(keys.STATS_OUTSTANDING)
    if kept is not None:
        points, at = (int(x) for x in kept.decode().split("|"))
        if now - at < BALANCE_FRESH_MS:
            return points, at
    points = await outstanding_points(program)
    await program.redis.set(keys.STATS_OUTSTANDING, f"{points}|{now}")
    return points, now


def shop_dates(program: Program, days: int, before: int = 0) -> list[str]:
    """`days` shop-time days, oldest first, ending `before` days before today (0: ending today)."""
    today = engine.shop_time(program.rules, program.now_ms()).date()
    return [(today - timedelta(days=back + before)).isoformat() for back in range(days - 1, -1, -1)]


def day_start_ms(program: Program) -> int:
    """When today began, shop time, in ms."""
    return int(engine.shop_time(program.rules, program.now_ms()).replace(
        hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


async def day_counters(redis: Any, dates: list[str]) -> list[dict[str, int]]:
    """Every counter of each shop-time day (YYYY-MM-DD), in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for day in dates:
            pipe.hgetall(keys.stats_day(day))
        raw_days = await pipe.execute()
    return [{k.decode(): int(v) for k, v in raw.items()} for raw in raw_days]


async def referrer_cycles(redis: Any) -> list[tuple[int, int]]:
    """(first seen, first completed referral) in ms of every referrer with one: the viral cycle's spans."""
    spans = []
    for raw in (await redis.hgetall(keys.CYCLES)).values():
        joined, first = (int(x) for x in raw.decode().split("|"))
        spans.append((joined, first))
    return spans


async def claims_by_reward(program: Program, days: int = 30) -> dict[str, int]:
    """Claims per reward id over the last `days` shop-time days (the catalog's `rewards_claimed:<id>`)."""
    claims: dict[str, int] = {}
    for counters in await day_counters(program.redis, shop_dates(program, days)):
        for name, value in counters.items():
            if name.startswith("rewards_claimed:"):
                reward = name.split(":", 1)[1]
                claims[reward] = claims.get(reward, 0) + value
    return claims


async def report(program: Program, days: int = 30, balance: bool = True) -> dict[str, Any]:
    """The numbers of the last `days` days; `balance` False leaves out the outstanding points (a read of every
    member), for a glance such as the staff card's second report."""
    redis = program.redis
    yen = program.rules.yen
    dates = shop_dates(program, days)
    by_day: list[dict[str, Any]] = []
    totals: dict[str, int] = dict.fromkeys(DAILY, 0)
    refused: dict[str, int] = {}
    for day, counters in zip(dates, await day_counters(redis, dates), strict=True):
        row: dict[str, Any] = {"day": day} | {name: counters.get(name, 0) for name in DAILY}
        row |= {f"{name}_yen": yen(row[name]) for name in POINT_COUNTERS}
        by_day.append(row)
        for name in DAILY:
            totals[name] += counters.get(name, 0)
        for name, value in counters.items():
            if name.startswith("refused:"):
                refused[name.split(":", 1)[1]] = refused.get(name.split(":", 1)[1], 0) + value
    members = await buckets.member_count(redis)
    for row in by_day:
        row["k_factor"] = _ratio(int(row["referrals_completed"]), members)
    top = await redis.zrevrangebyscore(keys.TOP_REFERRERS, "+inf", 1, start=0, num=TOP, withscores=True)
    referrers = int(await redis.zcount(keys.TOP_REFERRERS, 1, "+inf"))
    completed_ever = sum(int(score) for _, score in
                         await redis.zrangebyscore(keys.TOP_REFERRERS, 1, "+inf", withscores=True))
    start_ms = day_start_ms(program) - (days - 1) * DAY_MS
    cycles = [first - joined for joined, first in await referrer_cycles(redis) if first >= start_ms]
    median_ms = int(statistics.median(cycles)) if cycles else None
    owed, owed_at = await owed_now(program) if balance else (None, 0)
    return {
        "days": days, "from": dates[0], "to": dates[-1], "members": members,
        "invites_shown": totals["invites_shown"], "invite_pages_opened": totals["invite_pages_opened"],
        "codes_sent": totals["codes_sent"],
        "referrals": {"pending": totals["referrals_pending"], "completed": totals["referrals_completed"],
                      "review": totals["referrals_review"], "voided": totals["referrals_voided"],
                      "refused": dict(sorted(refused.items()))},
        # the referral funnel: shares and invites → pages opened → codes sent and LIFF attributions (some
        # waiting for their follow) → referrals pending → first purchases → completed
        "funnel": {"invites_shown": totals["invites_shown"], "shares": totals["shares"],
                   "invite_pages_opened": totals["invite_pages_opened"],
                   "liff_pages_opened": totals["liff_pages_opened"], "codes_sent": totals["codes_sent"],
                   "awaiting_follow": totals["awaiting_follow"], "liff_attributions": totals["liff_attributions"],
                   "referrals_pending": totals["referrals_pending"],
                   "first_purchases": totals["first_purchases"],
                   "referrals_completed": totals["referrals_completed"]},
        "shares": totals["shares"], "liff_attributions": totals["liff_attributions"],
        "conversion_rate": _ratio(totals["referrals_completed"], totals["invite_pages_opened"]),
        "k_factor": _ratio(totals["referrals_completed"], members),
        "referrals_per_referrer": _ratio(completed_ever, referrers),
        "viral_cycle_time_ms": median_ms,
        "viral_cycle_time_days": round(median_ms / DAY_MS, 2) if median_ms is not None else None,
        "orders": totals["orders"], "revenue_yen": totals["revenue_yen"],
        "referred_revenue_yen": totals["referred_revenue_yen"],
        # every points figure with its yen beside it, at [points] point_value_yen
        "points": {"issued": totals["points_issued"], "spent": totals["points_spent"],
                   "expired": totals["points_expired"], "issued_yen": yen(totals["points_issued"]),
                   "spent_yen": yen(totals["points_spent"]), "expired_yen": yen(totals["points_expired"]),
                   "point_value_yen": program.rules.point_value_yen}
                  | ({"outstanding": owed, "outstanding_yen": yen(owed),
                      "outstanding_at": engine.shop_time(program.rules, owed_at).isoformat()} if owed is not None
                     else {}),
        # [budget]: this month's spend against each cap (rewards/budget.py)
        "budget": {kind: (await program.budget.status(kind)).as_json() for kind in KINDS},
        "rewards_claimed": totals["rewards_claimed"],
        "top_referrers": [{"user_id": uid.decode(), "completed": int(score)} for uid, score in top],
        "by_day": by_day,
    }
