"""ヘルプ / help: what the bot can do."""
from bot.dispatcher import Ctx, MessageEvent, Router, words
from handlers.common import text

router = Router("help")


@router.on(MessageEvent, words("ヘルプ", "へるぷ", "help", "使い方", "?", "？", "メニュー", "menu"))
async def on_help(ctx: Ctx) -> None:
    await ctx.answer(text(ctx, ctx.t("help")))
