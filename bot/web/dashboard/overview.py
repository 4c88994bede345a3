"""/admin/: the overview, the program's numbers over 7, 30 or 90 days beside the period before, charted by day.

The numbers come from rewards/overview.py (the per-day counters, read in one round trip); this module only says
how each is shown. The charts are uPlot (bundled in static/, never from a CDN), drawn by static/overview.js from
the JSON the page carries.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.web.dashboard import auth
from bot.web.dashboard.render import language, render, translator
from rewards.overview import FUNNEL, PERIODS, Metric, overview

NAV = [("/admin/", "dash_nav_overview", "read")]
DEFAULT_DAYS = 30
# what each number is, for its format (and the chart's axis): count | ratio | days | yen | points
KINDS = {"k_factor": "ratio", "viral_cycle_days": "days", "referred_revenue_yen": "yen", "points_issued": "points",
         "points_spent": "points", "points_expired": "points"}
KEY_NUMBERS = ("k_factor", "viral_cycle_days", "referred_revenue_yen", "points_issued", "points_spent",
               "points_expired", "rewards_claimed")
CHARTS = tuple(name for name, _ in FUNNEL) + KEY_NUMBERS


@dataclass(frozen=True)
class Shown:
    """One metric as the page shows it."""

    name: str
    kind: str
    value: str  # this period's total, formatted
    previous: str  # the previous period's
    change: str  # ▲12% / ▼3% / new / ""
    trend: str  # up | down | flat: the change's colour
    rate: str = ""  # funnel steps: the share of the step before


def _change(now: float | None, before: float | None) -> tuple[int | None, bool]:
    """(percent change, new): None when there is nothing to compare."""
    if now is None or before is None:
        return None, False
    if before == 0:
        return None, now > 0
    return round((now - before) / before * 100), False


def shown(t: Callable[..., str], metric: Metric, step_before: Metric | None = None) -> Shown:
    kind = KINDS.get(metric.name, "count")

    def fmt(value: float | None, yen: int | None) -> str:
        if value is None:
            return t("ops_none")
        if kind == "ratio":
            return f"{value:.2f}"
        if kind == "days":
            return t("ops_days_value", days=f"{value:g}")
        if kind == "yen":
            return t("ops_yen", yen=f"{int(value):,}")
        if kind == "points":
            return t("ops_points_yen", points=f"{int(value):,}", yen=f"{yen or 0:,}")
        return f"{int(value):,}"

    pct, new = _change(metric.total, metric.previous_total)
    change = t("ops_change_new") if new else (
        "" if pct is None or pct == 0 else t("ops_change_up" if pct > 0 else "ops_change_down", pct=abs(pct)))
    trend = "up" if new or (pct or 0) > 0 else ("down" if (pct or 0) < 0 else "flat")
    rate = ""
    if step_before is not None and step_before.total:
        rate = t("ops_step_rate", rate=round((metric.total or 0) / step_before.total * 100, 1))
    return Shown(metric.name, kind, fmt(metric.total, metric.yen), fmt(metric.previous_total, metric.previous_yen),
                 change, trend, rate)


@auth.requires("read")
async def page(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """GET /admin/?days=7|30|90 (30 unless one of those)."""
    asked = request.query.get("days", "")
    days = int(asked) if asked in {str(p) for p in PERIODS} else DEFAULT_DAYS
    s = auth.services(request)
    view = await overview(s.program, days)
    t = translator(request, language(request))
    funnel = [shown(t, m, view.funnel[i - 1] if i else None) for i, m in enumerate(view.funnel)]
    top = max((m.total or 0 for m in view.funnel), default=0)
    shares = {m.name: round((m.total or 0) / top, 4) if top else 0 for m in view.funnel}
    charts: dict[str, Any] = {"dates": view.dates, "previous_dates": view.previous_dates,
                              "labels": {"current": t("ops_this_period"), "previous": t("ops_previous_period")},
                              "series": {name: {"label": t(f"ops_metric_{name}"), "kind": KINDS.get(name, "count"),
                                                "current": view.metrics[name].current,
                                                "previous": view.metrics[name].previous} for name in CHARTS}}
    return render(request, staff, "overview.html", view=view, periods=PERIODS, funnel=funnel, shares=shares,
                  key_numbers=[shown(t, view.metrics[name]) for name in KEY_NUMBERS], charts=CHARTS,
                  chart_data=charts, point_value=f"{s.program.rules.point_value_yen:g}")


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/", page)
    app.router.add_get("/admin", home)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/admin/")
