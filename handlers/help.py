"""ヘルプ / help: the main actions as buttons."""
from bot.dispatcher import Ctx, MessageEvent, Router, words
from handlers.common import card, render

router = Router("help")


@router.on(MessageEvent, words("ヘルプ", "へるぷ", "help", "使い方", "?", "？", "メニュー", "menu"))
async def on_help(ctx: Ctx) -> None:
    await ctx.answer(card(ctx, ctx.t("help"), render(ctx, "help")))
