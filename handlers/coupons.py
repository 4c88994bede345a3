"""クーポン / coupons: the member's coupons, newest first, as a carousel of coupon cards."""
from __future__ import annotations

from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from bot.line import flex
from bot.line.flex import cut
from handlers.common import card, text
from handlers.friend_coupon import is_friend_coupon, offer_name
from handlers.rewards_catalog import NAME_MAX, coupon_card

router = Router("coupons")
SHOWN = 10
STATE_COLORS = {"valid": "#06C755", "used": "#8E8E8E", "expired": "#B0B0B0"}


@router.on(MessageEvent, keyword("coupons"))
async def on_coupons(ctx: Ctx) -> None:
    catalog = ctx.services.catalog
    coupons = await catalog.coupons(ctx.user_id, SHOWN)
    if not coupons:
        await ctx.answer(text(ctx, ctx.t("coupons_empty")))
        return
    now_ms = catalog.now_ms()
    bubbles = []
    for coupon in coupons:
        reward = ctx.program.rules.reward(coupon.reward_id)
        name = cut((reward.name.get(ctx.lang) or reward.name["ja"]) if reward else coupon.reward_id, NAME_MAX)
        if is_friend_coupon(coupon):  # the welcome coupon a referral gave: named by its offer
            name = offer_name(ctx, await ctx.program.friend_coupons.rule_of(ctx.user_id))
        if coupon.used:
            state = "used"
            headline = ctx.t("coupon_state_used", date=catalog.day_of(coupon.used_at_ms).strftime("%Y/%m/%d"))
        elif coupon.expired(now_ms):
            state, headline = "expired", ctx.t("coupon_state_expired")
        else:
            state, headline = "valid", ctx.t("coupon_state_valid")
        bubbles.append(coupon_card(ctx, coupon, name, headline, STATE_COLORS[state]))
    await ctx.answer(card(ctx, ctx.t("flex_coupons_alt", count=len(coupons)), flex.carousel(bubbles)))
