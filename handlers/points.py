"""ポイント / points: the balance, the tier and the latest ledger lines."""
from datetime import datetime, timedelta, timezone

from bot.dispatcher import Ctx, MessageEvent, Router, keyword
from handlers.common import show_loading, text

router = Router("points")
JST = timezone(timedelta(hours=9))


@router.on(MessageEvent, keyword("points"))
async def on_points(ctx: Ctx) -> None:
    await show_loading(ctx)
    member = await ctx.program.member(ctx.user_id)
    if member is None:  # cannot happen after a sighting, but never answer with nothing
        return
    next_tier = (ctx.t("points_next_tier", points=f"{member.to_next_tier:,}", tier=member.next_tier)
                 if member.next_tier else "")
    summary = ctx.t("points", points=f"{member.points:,}", tier=member.tier, next_tier=next_tier)
    if member.pending_points:
        summary += ctx.t("points_pending", points=f"{member.pending_points:,}")
    if member.debt:
        summary += ctx.t("points_debt", points=f"{member.debt:,}")
    lines = [summary, "", ctx.t("points_history_title")]
    history = await ctx.program.recent_ledger(ctx.user_id, 5)
    for entry in history:
        when = datetime.fromtimestamp(entry.at_ms / 1000, JST).strftime("%m/%d")
        lines.append(ctx.t("points_line", date=when, delta=f"{entry.delta:+,}", kind=ctx.t(f"kind_{entry.kind}")))
    if not history:
        lines.append(ctx.t("points_history_empty"))
    await ctx.answer(text(ctx, "\n".join(lines)))
