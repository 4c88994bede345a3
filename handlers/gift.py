"""相手に譲る / gift: a referrer chooses whether their referral reward goes to the friend instead."""
from dataclasses import dataclass

from bot.chat.context import Ctx
from bot.chat.postback import PostbackData
from bot.chat.router import MessageEvent, PostbackEvent, Router, keyword, postback
from handlers.common import text

router = Router("gift")


@dataclass(frozen=True)
class GiftChoice(PostbackData):
    prefix = "gift"
    on: bool


def _choice(ctx: Ctx, on: bool) -> dict:
    label = ctx.t("gift_turn_on" if on else "gift_turn_off")
    return {"type": "action", "action": {"type": "postback", "label": label, "data": ctx.pack(GiftChoice(on)),
                                         "displayText": label}}


@router.on(MessageEvent, keyword("gift"))
async def on_gift_word(ctx: Ctx) -> None:
    rules = ctx.program.rules
    if not rules.allow_gift:
        await ctx.answer(text(ctx, ctx.t("gift_not_offered")))
        return
    member = await ctx.program.member(ctx.user_id)
    gifting = bool(member and member.gift)
    points = f"{(await ctx.program.offer_for(ctx.user_id)).referrer_points:,}"  # a referral now: campaigns, their arm
    status = ctx.t("gift_status_on" if gifting else "gift_status_off", points=points)
    await ctx.answer(text(ctx, status, _choice(ctx, not gifting)))


@router.on(PostbackEvent, postback(GiftChoice))
async def on_gift_choice(ctx: Ctx, data: GiftChoice) -> None:
    if not ctx.program.rules.allow_gift:
        await ctx.answer(text(ctx, ctx.t("gift_not_offered")))
        return
    await ctx.program.set_gift(ctx.user_id, data.on)
    await ctx.answer(text(ctx, ctx.t("gift_set_on" if data.on else "gift_set_off")))
