"""ヘルプ / help: what the bot can do."""
from bot.dispatcher import Ctx, MessageEvent, Router, keyword
from handlers.common import text

router = Router("help")


@router.on(MessageEvent, keyword("help"))
async def on_help(ctx: Ctx) -> None:
    await ctx.answer(text(ctx, ctx.t("help")))
