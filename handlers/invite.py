"""招待 / invite: the member's invite link, its QR code and a ready-to-forward caption."""
from urllib.parse import quote

from bot.dispatcher import Ctx, MessageEvent, Router, keyword
from bot.links import invite_link, qr_image_url
from handlers.common import text

router = Router("invite")


@router.on(MessageEvent, keyword("invite"))
async def on_invite(ctx: Ctx) -> None:
    code = await ctx.program.invite_code(ctx.user_id)
    await ctx.program.count("invites_shown")
    settings, rules = ctx.services.settings, ctx.program.rules
    link = invite_link(settings, code)
    caption = ctx.t("invite_caption", shop=ctx.t("shop_name"), friend_points=rules.friend_points, link=link)
    share = {"type": "action", "action": {"type": "uri", "label": ctx.t("qr_share"),
                                          "uri": "https://line.me/R/share?text=" + quote(caption)}}
    qr = qr_image_url(settings, code)
    await ctx.answer(
        {"type": "image", "originalContentUrl": qr, "previewImageUrl": qr},
        text(ctx, ctx.t("invite", link=link, referrer_points=rules.referrer_points,
                        friend_points=rules.friend_points), share),
    )
