"""クーポン / coupons: the member's coupons, newest first, each with its code, state and page link."""
from __future__ import annotations

from bot.dispatcher import Ctx, MessageEvent, Router, keyword
from bot.links import coupon_link
from handlers.common import text
from handlers.rewards_catalog import coupon_lines

router = Router("coupons")
SHOWN = 10


@router.on(MessageEvent, keyword("coupons"))
async def on_coupons(ctx: Ctx) -> None:
    catalog = ctx.services.catalog
    coupons = await catalog.coupons(ctx.user_id, SHOWN)
    if not coupons:
        await ctx.answer(text(ctx, ctx.t("coupons_empty")))
        return
    lines = [ctx.t("coupons_title")]
    now_ms = catalog.now_ms()
    for coupon in coupons:
        reward = ctx.program.rules.reward(coupon.reward_id)
        name = (reward.name.get(ctx.lang) or reward.name["ja"]) if reward else coupon.reward_id
        if coupon.used:
            state = ctx.t("coupon_state_used", date=catalog.day_of(coupon.used_at_ms).strftime("%Y/%m/%d"))
        elif coupon.expired(now_ms):
            state = ctx.t("coupon_state_expired")
        else:
            state = ctx.t("coupon_state_valid")
        lines += ["", ctx.t("coupons_line", name=name, state=state, lines=coupon_lines(ctx, coupon),
                            link=coupon_link(ctx.services.settings, coupon.token))]
    await ctx.answer(text(ctx, "\n".join(lines)))
