"""今日の数字 / today: a short card of today's numbers for staff."""
from __future__ import annotations

from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, words
from bot.chat.staff import is_staff
from handlers.staff_common import WORD_NUMBERS, staff_text
from rewards.stats import report

SHOWN_EXPERIMENT_STATUSES = ("running", "ended")  # in effect: the arms, or the winner for everyone

router = Router("staff_numbers")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def budget_line(ctx: Ctx, status: dict) -> str:
    """This month's referral budget in one line ([budget]), or that there is none."""
    if not status["cap_yen"]:
        return ctx.t("staff_numbers_budget_none")
    return ctx.t(f"staff_numbers_budget_{status['state']}", spent=f"{status['spent_yen']:,}",
                 cap=f"{status['cap_yen']:,}", share=percent(status["share"]), held=status["held"])


@router.on(MessageEvent, words(*WORD_NUMBERS), is_staff)
async def on_numbers(ctx: Ctx) -> None:
    today = await report(ctx.program, days=1)
    month = await report(ctx.program, days=30, balance=False)
    refs = today["referrals"]
    points, budget = today["points"], today["budget"]["referral"]
    body = ctx.t("staff_numbers", day=today["to"], members=f"{today['members']:,}",
                 shown=f"{today['invites_shown']:,}", opened=f"{today['invite_pages_opened']:,}",
                 codes=f"{today['codes_sent']:,}", pending=refs["pending"], completed=refs["completed"],
                 review=refs["review"], refused=sum(refs["refused"].values()),
                 revenue=f"{today['referred_revenue_yen']:,}", issued=f"{points['issued']:,}",
                 issued_yen=f"{points['issued_yen']:,}", spent=f"{points['spent']:,}",
                 spent_yen=f"{points['spent_yen']:,}", expired=f"{points['expired']:,}",
                 expired_yen=f"{points['expired_yen']:,}", outstanding=f"{points['outstanding']:,}",
                 outstanding_yen=f"{points['outstanding_yen']:,}", claimed=today["rewards_claimed"],
                 budget=budget_line(ctx, budget),
                 # a glance, not a report: K as 0.22, not 0.2222
                 conversion30=percent(month["conversion_rate"]), k30=f"{month['k_factor'] or 0:.2f}")
    lines = [body, *[experiment_line(ctx, e) for e in await ctx.program.experiments.report()
                     if e["status"] in SHOWN_EXPERIMENT_STATUSES]]
    await ctx.answer(staff_text(ctx, "\n".join(lines)))


def experiment_line(ctx: Ctx, experiment: dict) -> str:
    """One line per offer experiment in effect: each arm's completions, K-factor and cost per friend, and
    whether they differ yet (GET /api/v1/experiments has the intervals)."""
    if experiment["ended"]:
        return ctx.t("staff_numbers_experiment_ended", id=experiment["id"], winner=experiment["ended"]["winner"])
    arms = " / ".join(ctx.t("staff_numbers_experiment_arm", arm=a["id"], completed=a["completions"],
                            attributed=a["attributions"], k=f"{(a['k_factor'] or {}).get('value', 0):.2f}",
                            cost=f"{round(a['cost_yen'] / a['completions']):,}" if a["completions"] else "-")
                      for a in experiment["arms"])
    verdict = ctx.t("staff_numbers_experiment_significant" if experiment["significant"]
                    else "staff_numbers_experiment_not_yet")
    return ctx.t("staff_numbers_experiment", id=experiment["id"], arms=arms, verdict=verdict)
