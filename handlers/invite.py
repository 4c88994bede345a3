"""招待 / invite: the invite card — the offer for both sides, the QR code, a "share in LINE" button and the link."""
from urllib.parse import quote

from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from bot.line.links import invite_link, qr_image_url
from handlers.common import card, render, row

router = Router("invite")


@router.on(MessageEvent, keyword("invite"))
async def on_invite(ctx: Ctx) -> None:
    code = await ctx.program.invite_code(ctx.user_id)
    await ctx.program.count("invites_shown")
    settings, rules = ctx.services.settings, ctx.program.rules
    link = invite_link(settings, code)
    caption = ctx.t("invite_caption", shop=ctx.t("shop_name"), friend_points=rules.friend_points, link=link)
    rows = [row(ctx, ctx.t("flex_invite_you"), ctx.t("flex_invite_points", points=f"{rules.referrer_points:,}")),
            row(ctx, ctx.t("flex_invite_friend"), ctx.t("flex_invite_points", points=f"{rules.friend_points:,}")),
            row(ctx, ctx.t("flex_invite_code"), code)]
    contents = render(ctx, "invite", qr_url=qr_image_url(settings, code), link=link, rows=rows,
                      share_uri="https://line.me/R/share?text=" + quote(caption))
    await ctx.answer(card(ctx, ctx.t("flex_invite_alt", link=link), contents))
