"""ヘルプ / help: the main actions as buttons."""
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from handlers.common import card, render

router = Router("help")


@router.on(MessageEvent, keyword("help"))
async def on_help(ctx: Ctx) -> None:
    await ctx.answer(card(ctx, ctx.t("help"), render(ctx, "help")))
