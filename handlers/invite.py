"""招待 / invite: the invite card — the offer for both sides as the rules pay it now (the condition, the
amounts with any campaign, the hold, the member's share shown as the friend's when they give it away),
the QR code, a "share in LINE" button and the link."""
from urllib.parse import quote

from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from bot.line.links import invite_link, qr_image_url
from bot.line.offer_texts import budget_note, campaign_note, hold_note, joined, offer_text
from handlers.common import card, note, render, row

router = Router("invite")


@router.on(MessageEvent, keyword("invite"))
async def on_invite(ctx: Ctx) -> None:
    code = await ctx.program.invite_code(ctx.user_id)
    await ctx.program.count("invites_shown")
    await ctx.program.experiments.count(ctx.user_id, "invites_shown")  # under their arm, while one runs
    member = await ctx.program.member(ctx.user_id)
    settings, offer = ctx.services.settings, await ctx.program.offer_for(ctx.user_id, gift=bool(member and member.gift))
    link = invite_link(settings, code)
    # [budget]: once the month's referral budget is reached, the card says rewards wait (before any campaign), and
    # the text shared with friends promises nothing the program won't pay now
    paused = await ctx.program.budget.referral_paused()
    campaign, hold = campaign_note(ctx.t, offer), hold_note(ctx.t, offer)
    caption = ctx.t("invite_caption_budget", shop=ctx.t("shop_name"), link=link) if paused else joined(
        campaign, offer_text(ctx.t, "invite_caption", offer, shop=ctx.t("shop_name"), link=link))
    campaign = joined(budget_note(ctx.t, paused), campaign) or None
    yours = ctx.t("flex_invite_given") if offer.gift else ctx.t("flex_invite_points", points=f"{offer.referrer_points:,}")
    rows = [row(ctx, ctx.t("flex_invite_you"), yours),
            row(ctx, ctx.t("flex_invite_friend"), ctx.t("flex_invite_points", points=f"{offer.friend_points:,}")),
            row(ctx, ctx.t("flex_invite_code"), code)]
    contents = render(ctx, "invite", qr_url=qr_image_url(settings, code), link=link, rows=rows,
                      how=offer_text(ctx.t, "flex_invite_how", offer),
                      campaign=render(ctx, "_campaign", text=campaign) if campaign else None,
                      hold=note(ctx, hold) if hold else None,
                      share_uri="https://line.me/R/share?text=" + quote(caption))
    await ctx.answer(card(ctx, ctx.t("flex_invite_alt", link=link), contents))
