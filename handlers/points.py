"""ポイント / points: the member card — tier, balance, pending points, debt, progress to the next tier,
points expiring soon, the latest ledger lines and the member QR for the counter."""

import asyncio

from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from bot.line.flex import cut
from bot.line.links import member_qr_url
from handlers.account_link import member_card_part
from handlers.common import card, note, render, row, show_loading, tier_label
from rewards import engine

router = Router("points")
HISTORY_LINES = 5
NAME_MAX = 40


@router.on(MessageEvent, keyword("points"))
async def on_points(ctx: Ctx) -> None:
    show_loading(ctx)
    program = ctx.program
    # asked together, so their reads share round trips (bot/infra/redis_conn.py AutoPipelined)
    member, expiring, recent = await asyncio.gather(
        program.member(ctx.user_id), program.expiring(ctx.user_id), program.recent_ledger(ctx.user_id, HISTORY_LINES))
    if member is None:  # cannot happen after a sighting, but never answer with nothing
        return
    rows = []
    if member.pending_points:
        rows.append(row(ctx, ctx.t("flex_member_pending"),
                        ctx.t("flex_member_points_value", points=f"{member.pending_points:,}")))
    if member.debt:
        rows.append(row(ctx, ctx.t("flex_member_debt"), ctx.t("flex_member_points_value", points=f"{member.debt:,}")))
    if expiring:
        when = engine.shop_time(program.rules, expiring[1]).strftime("%Y/%m/%d")
        rows.append(row(ctx, ctx.t("flex_member_expiring"),
                        ctx.t("flex_member_expiring_value", points=f"{expiring[0]:,}", date=when)))
    if member.next_tier and member.to_next_tier is not None:
        reached = next((t.threshold for t in program.rules.tiers if t.name == member.tier), 0)
        goal = next((t.threshold for t in program.rules.tiers if t.name == member.next_tier), 0)
        span = max(goal - reached, 1)
        percent = max(0, min(100, round(100 * (span - member.to_next_tier) / span)))
        progress = render(ctx, "_progress", percent=percent, points=f"{member.to_next_tier:,}",
                          tier=tier_label(ctx, member.next_tier))
    else:
        progress = note(ctx, ctx.t("flex_member_top"))
    history = [row(ctx, ctx.t("flex_member_history_label",
                              date=engine.shop_time(program.rules, entry.at_ms).strftime("%m/%d"),
                              kind=ctx.t(f"kind_{entry.kind}")),
                   ctx.t("flex_member_points_value", points=f"{entry.delta:+,}"))
               for entry in recent]
    token = member.member_token or await program.member_token(ctx.user_id)  # minted on the first card
    linked = await program.links.customer_of(ctx.user_id) if ctx.services.settings.shop_link_url else None
    display_name = cut(member.nickname, NAME_MAX) if member.nickname else ctx.t("shop_name")
    tier = tier_label(ctx, member.tier)
    contents = render(ctx, "membership", shop=ctx.t("shop_name"), display_name=display_name, tier=tier,
                      points=f"{member.points:,}", rows=rows, progress=progress,
                      history=history or [note(ctx, ctx.t("flex_member_history_empty"))],
                      qr_url=member_qr_url(ctx.services.settings, token),
                      account_link=member_card_part(ctx, linked))
    await ctx.answer(card(ctx, ctx.t("flex_member_alt", points=f"{member.points:,}", tier=tier), contents))
