"""The dashboard's overview: the program's numbers by shop-time day over a period (7, 30 or 90 days) beside
the same number of days just before it, from the per-day counters rewards/counters.py keeps.

Read only, and pure data (the page charts it): every metric has its value per day for both periods and a
total for each. Definitions (the page shows them as notes):
- the funnel: invites shown → shares → invite pages opened (plain and LIFF) → attributions (a referred friend
  recorded, by code or LIFF) → first purchases (a referred friend's first order) → completions (referrals
  that paid).
- K-factor: completions ÷ members (per day: that day's completions ÷ members; members as they are now).
- viral cycle time: the median days from a referrer's first sighting to their first completed referral, over
  the referrers whose first completion falls in the period (per day: in that day).
- points issued, spent and expired, with what they cost the shop in yen (rules.yen).
"""
from __future__ import annotations

import asyncio
import bisect
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rewards import buckets, stats
from rewards.program import Program

PERIODS = (7, 30, 90)
DAY_MS = stats.DAY_MS

# the funnel's steps: (metric, the per-day counters it adds up)
FUNNEL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("invites_shown", ("invites_shown",)),
    ("shares", ("shares",)),
    ("pages_opened", ("invite_pages_opened", "liff_pages_opened")),
    ("attributions", ("referrals_pending",)),
    ("first_purchases", ("first_purchases",)),
    ("completions", ("referrals_completed",)),
)
# the other counted metrics, charted the same way
COUNTED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("referred_revenue_yen", ("referred_revenue_yen",)),
    ("points_issued", ("points_issued",)),
    ("points_spent", ("points_spent",)),
    ("points_expired", ("points_expired",)),
    ("rewards_claimed", ("rewards_claimed",)),
)
POINTS = ("points_issued", "points_spent", "points_expired")  # shown with their yen


@dataclass(frozen=True)
class Metric:
    name: str
    current: list[float | None]  # by day, oldest first (None: nothing to measure that day)
    previous: list[float | None]  # the period before, day for day
    total: float | None  # over the period
    previous_total: float | None
    yen: int | None = None  # points metrics: what the total costs the shop
    previous_yen: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "current": self.current, "previous": self.previous, "total": self.total,
                "previous_total": self.previous_total, "yen": self.yen, "previous_yen": self.previous_yen}


@dataclass(frozen=True)
class Overview:
    days: int
    dates: list[str]  # the period's shop-time days, oldest first (the last is today)
    previous_dates: list[str]
    members: int
    funnel: list[Metric]  # in the funnel's order
    metrics: dict[str, Metric]  # every metric by name, the funnel's too

    def as_dict(self) -> dict[str, Any]:
        return {"days": self.days, "dates": self.dates, "previous_dates": self.previous_dates,
                "members": self.members, "funnel": [m.name for m in self.funnel],
                "metrics": {name: m.as_dict() for name, m in self.metrics.items()}}


def _ratio(part: float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _median_days(spans: list[int]) -> float | None:
    return round(statistics.median(spans) / DAY_MS, 2) if spans else None


async def overview(program: Program, days: int) -> Overview:
    """The period of `days` ending today and the `days` before it."""
    if days not in PERIODS:
        raise ValueError(f"days must be one of {PERIODS}")
    rules = program.rules
    dates = stats.shop_dates(program, days)
    previous_dates = stats.shop_dates(program, days, before=days)
    # asked together, so they share round trips (auto-pipelined): both periods' days, the members, the spans
    rows, members, cycles = await asyncio.gather(stats.day_counters(program.redis, previous_dates + dates),
                                                 buckets.member_count(program.redis),
                                                 stats.referrer_cycles(program.redis))
    before, now = rows[:days], rows[days:]

    metrics: dict[str, Metric] = {}
    for name, counters in FUNNEL + COUNTED:
        current: list[float | None] = [sum(row.get(c, 0) for c in counters) for row in now]
        previous: list[float | None] = [sum(row.get(c, 0) for c in counters) for row in before]
        total, previous_total = sum(v or 0 for v in current), sum(v or 0 for v in previous)
        yen = (rules.yen(int(total)), rules.yen(int(previous_total))) if name in POINTS else (None, None)
        metrics[name] = Metric(name, current, previous, total, previous_total, *yen)

    completions = metrics["completions"]
    metrics["k_factor"] = Metric(
        "k_factor", [_ratio(v or 0, members) for v in completions.current],
        [_ratio(v or 0, members) for v in completions.previous],
        _ratio(completions.total or 0, members), _ratio(completions.previous_total or 0, members))

    # each referrer's first completion, by the shop-time day it fell on (found among the days' starts, so a
    # shop with many referrers costs one comparison each, not a date conversion each)
    days_all = previous_dates + dates
    starts = [int(datetime.fromisoformat(day).replace(tzinfo=rules.timezone).timestamp() * 1000) for day in days_all]
    end = starts[-1] + DAY_MS
    spans_by_day: dict[str, list[int]] = {}
    for joined, first in cycles:
        if starts[0] <= first < end:
            day = days_all[bisect.bisect_right(starts, first) - 1]
            spans_by_day.setdefault(day, []).append(first - joined)

    def cycle(period: list[str]) -> tuple[list[float | None], float | None]:
        by_day = [_median_days(spans_by_day.get(day, [])) for day in period]
        return by_day, _median_days([span for day in period for span in spans_by_day.get(day, [])])

    (now_days, now_median), (before_days, before_median) = cycle(dates), cycle(previous_dates)
    metrics["viral_cycle_days"] = Metric("viral_cycle_days", now_days, before_days, now_median, before_median)
    return Overview(days=days, dates=dates, previous_dates=previous_dates, members=members,
                    funnel=[metrics[name] for name, _ in FUNNEL], metrics=metrics)
