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
from rewards import budget
from rewards.overview import FUNNEL, PERIODS, Metric, overview

NAV = [("/admin/", "dash_nav_overview", "read")]
DEFAULT_DAYS = 30
# what each number is, for its format (and the chart's axis): count | ratio | days | yen | points
KINDS = {"k_factor": "ratio", "viral_cycle_days": "days", "referred_revenue_yen": "yen", "points_issued": "points",
         "points_spent": "points", "points_expired": "points"}
KEY_NUMBERS = ("k_factor", "viral_cycle_days", "referred_revenue_yen", "points_issued", "points_spent",
               "points_expired", "rewards_claimed")
CHARTS = tuple(name for name, _ in FUNNEL) + KEY_NUMBERS
# each funnel step's rate is against the step it follows from: shares and pages opened both follow an invite
RATE_OF = {"shares": "invites_shown", "pages_opened": "invites_shown", "attributions": "pages_opened",
           "first_purchases": "attributions", "completions": "first_purchases"}
LOWER_IS_BETTER = frozenset({"viral_cycle_days"})  # its rise is shown in red


@dataclass(frozen=True)
class Shown:
    """One metric as the page shows it."""

    name: str
    kind: str
    value: str  # this period's total, formatted
    previous: str  # the previous period's
    change: str  # ▲12% / ▼3% / new / ""
    trend: str  # good | bad | flat: the change's colour
    rate: str = ""  # funnel steps: the share of the step they follow from
    extra: str = ""  # points: what they cost in yen


def _change(now: float | None, before: float | None) -> tuple[int | None, bool]:
    """(percent change, new): None when there is nothing to compare."""
    if now is None or before is None:
        return None, False
    if before == 0:
        return None, now > 0
    return round((now - before) / before * 100), False


def shown(t: Callable[..., str], metric: Metric, basis: Metric | None = None) -> Shown:
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
            return t("ops_points", points=f"{int(value):,}")
        return f"{int(value):,}"

    pct, new = _change(metric.total, metric.previous_total)
    change = t("ops_change_new") if new else (
        "" if pct is None or pct == 0 else t("ops_change_up" if pct > 0 else "ops_change_down", pct=abs(pct)))
    rising = new or (pct or 0) > 0
    trend = "flat" if not rising and not (pct or 0) < 0 else (
        "bad" if rising == (metric.name in LOWER_IS_BETTER) else "good")
    rate = ""
    if basis is not None and basis.total:
        rate = t("ops_step_rate", rate=round((metric.total or 0) / basis.total * 100, 1),
                 basis=t(f"ops_metric_{basis.name}"))
    previous = fmt(metric.previous_total, metric.previous_yen)
    extra = ""
    if kind == "points":
        extra = t("ops_yen", yen=f"{metric.yen or 0:,}")
        previous = t("ops_points_yen", points=f"{int(metric.previous_total or 0):,}", yen=f"{metric.previous_yen or 0:,}")
    return Shown(metric.name, kind, fmt(metric.total, metric.yen), previous, change, trend, rate, extra)


@auth.requires("read")
async def page(request: web.Request, staff: auth.Staff) -> web.StreamResponse:
    """GET /admin/?days=7|30|90 (30 unless one of those)."""
    asked = request.query.get("days", "")
    days = int(asked) if asked in {str(p) for p in PERIODS} else DEFAULT_DAYS
    s = auth.services(request)
    view = await overview(s.program, days)
    t = translator(request, language(request))
    funnel = [shown(t, m, view.metrics[RATE_OF[m.name]] if m.name in RATE_OF else None) for m in view.funnel]
    top = max((m.total or 0 for m in view.funnel), default=0)
    shares = {m.name: round((m.total or 0) / top, 4) if top else 0 for m in view.funnel}
    charts: dict[str, Any] = {"dates": view.dates, "previous_dates": view.previous_dates,
                              "labels": {"current": t("ops_this_period"), "previous": t("ops_previous_period")},
                              "series": {name: {"label": t(f"ops_metric_{name}"), "kind": KINDS.get(name, "count"),
                                                "current": view.metrics[name].current,
                                                "previous": view.metrics[name].previous} for name in CHARTS}}
    # the month's budgets (only those with a cap) and the offer experiments: the program as a business (issue 15)
    budgets = [b for b in [await s.program.budget.status(kind) for kind in budget.KINDS] if b.cap_yen]
    return render(request, staff, "overview.html", view=view, periods=PERIODS, funnel=funnel, shares=shares,
                  key_numbers=[shown(t, view.metrics[name]) for name in KEY_NUMBERS], charts=CHARTS,
                  chart_data=charts, point_value=f"{s.program.rules.point_value_yen:g}", budgets=budgets,
                  experiments=await s.program.experiments.report())


def setup(app: web.Application, services_key: web.AppKey) -> None:
    app.router.add_get("/admin/", page)
    app.router.add_get("/admin", home)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/admin/")
