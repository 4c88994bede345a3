"""ランキング / leaderboard: this month's top referrers by completed referrals. A nickname shows only when
its member consented; everyone else is "会員 A3F9" (the start of their invite code) or "会員 #n"."""
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from bot.line.flex import cut
from handlers.common import card, note, render
from rewards.board import Ranked

router = Router("leaderboard")
TOP = 10
NAME_MAX = 20
MEDALS = {1: "#C9A227", 2: "#8E8E8E", 3: "#B0703A"}


def shown_name(ctx: Ctx, ranked: Ranked, rank: int) -> str:
    if ranked.nickname:
        return cut(ranked.nickname, NAME_MAX)
    if ranked.code:
        return ctx.t("flex_board_member", hint=ranked.code[:4])
    return ctx.t("flex_board_member_n", n=rank)


@router.on(MessageEvent, keyword("leaderboard"))
async def on_leaderboard(ctx: Ctx) -> None:
    month = ctx.program.month_of()
    board = await ctx.program.leaderboard(month, TOP)
    rows = [render(ctx, "_rank", rank=str(n), rank_color=MEDALS.get(n, "#333333"), name=shown_name(ctx, r, n),
                   count=r.completed) for n, r in enumerate(board, start=1)]
    mine = next((r.completed for r in board if r.user_id == ctx.user_id), None)
    me = note(ctx, ctx.t("flex_board_me", count=mine)) if mine else None
    contents = render(ctx, "leaderboard", month=month, rows=rows or [note(ctx, ctx.t("flex_board_empty"))], me=me)
    await ctx.answer(card(ctx, ctx.t("flex_board_alt", month=month), contents))
