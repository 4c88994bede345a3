"""A message carrying an invite code: attribute the sender to the code's owner, or say kindly why not."""
import logging
from typing import Any

from bot import notices
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, carries_code
from handlers.common import text
from handlers.friend_coupon import friend_coupon_messages
from rewards.referrals import Attribution

router = Router("referral_code")
log = logging.getLogger(__name__)


@router.on(MessageEvent, carries_code)
async def on_code(ctx: Ctx, code: str) -> None:
    rules = ctx.program.rules
    outcome = await ctx.program.attribute(ctx.user_id, code, op=ctx.event_id)
    if not outcome.ok:
        log.info("referral refused for %s: %s (code %s)", ctx.user_id, outcome.reason, code)
        await ctx.answer(text(ctx, ctx.t(f"refused_{outcome.reason}", days=rules.referral_window_days)))
        return
    await ctx.answer(*attribution_accepted(ctx, outcome))
    await notices.after_attribution(ctx.services, outcome, ctx.user_id, op=ctx.event_id)


def attribution_accepted(ctx: Ctx, outcome: Attribution) -> list[dict[str, Any]]:
    """What the friend is told when their attribution is accepted, in chat: after a code message, and in the
    reply to the follow that completes an attribution begun on the LIFF page. One place, so both say the same:
    the referral counted, and the welcome coupon when the rules give one."""
    said = [text(ctx, ctx.t("referral_ok", friend_points=ctx.program.rules.friend_points))]
    return said + friend_coupon_messages(ctx, outcome.coupon)
