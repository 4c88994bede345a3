"""Anything else: never silence. Text we do not understand gets short help; stickers and images a kind word."""
from bot.dispatcher import Ctx, MessageEvent, PostbackEvent, Router, is_text
from handlers.common import text

router = Router("fallback")


@router.on(MessageEvent, is_text)
async def on_unknown_text(ctx: Ctx) -> None:
    await ctx.answer(text(ctx, ctx.t("fallback")))


@router.on(MessageEvent)
async def on_other_message(ctx: Ctx) -> None:
    await ctx.answer(text(ctx, ctx.t("not_text")))


@router.on(PostbackEvent)
async def on_unknown_postback(ctx: Ctx) -> None:
    """A button from an old message, or data someone edited: nothing is done, the main actions are offered."""
    await ctx.answer(text(ctx, ctx.t("button_not_valid")))
