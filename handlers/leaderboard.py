"""ランキング / leaderboard: this month's top referrers by completed referrals, named as handlers/names.py
names people everywhere (a nickname only when its member consented; "あなた" for the member asking)."""
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from handlers.common import card, note, render
from handlers.names import person_name

router = Router("leaderboard")
TOP = 10
MEDALS = {1: "#C9A227", 2: "#8E8E8E", 3: "#B0703A"}


@router.on(MessageEvent, keyword("leaderboard"))
async def on_leaderboard(ctx: Ctx) -> None:
    month = ctx.program.month_of()
    board = await ctx.program.leaderboard(month, TOP)
    rows = [render(ctx, "_rank", rank=str(n), rank_color=MEDALS.get(n, "#333333"),
                   name=person_name(ctx, r.user_id, r.nickname), count=r.completed)
            for n, r in enumerate(board, start=1)]
    mine = next((r.completed for r in board if r.user_id == ctx.user_id), None)
    me = note(ctx, ctx.t("flex_board_me", count=mine)) if mine else None
    contents = render(ctx, "leaderboard", month=month, rows=rows or [note(ctx, ctx.t("flex_board_empty"))], me=me)
    await ctx.answer(card(ctx, ctx.t("flex_board_alt", month=month), contents))
