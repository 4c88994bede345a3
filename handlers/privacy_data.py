"""データ / my data: a short-lived signed link to everything kept about the member (bot/privacy.py, the page
GET /me/data), valid 15 minutes. The link is the member's alone: it names no one else and needs no login."""
from bot import privacy
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from handlers.common import text

router = Router("privacy_data")


@router.on(MessageEvent, keyword("my_data"))
async def on_my_data(ctx: Ctx) -> None:
    minutes = privacy.DATA_LINK_SECONDS // 60
    await ctx.answer(text(ctx, ctx.t("privacy_data_link", url=privacy.data_url(ctx.services, ctx.user_id),
                                     minutes=minutes)))
