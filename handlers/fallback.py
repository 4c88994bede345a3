"""Anything else: never silence. Text we do not understand gets short help; stickers and images a kind word."""
from linebot.v3.webhooks import TextMessageContent

from bot.chat.context import Ctx
from bot.chat.keywords import is_emoji_only
from bot.chat.router import MessageEvent, PostbackEvent, Router, is_text
from handlers.common import text

router = Router("fallback")


def emoji_only(ctx: Ctx) -> bool:
    message = getattr(ctx.event, "message", None)
    if not isinstance(message, TextMessageContent):
        return False
    spans = [(e.index, e.length) for e in message.emojis or []]
    return is_emoji_only(message.text, spans)


@router.on(MessageEvent, emoji_only)
async def on_emoji(ctx: Ctx) -> None:
    """Emoji alone say hello or thanks, like a sticker: a kind word, not "I did not understand"."""
    await ctx.answer(text(ctx, ctx.t("not_text")))


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
