"""A message carrying an invite code: attribute the sender to the code's owner, or say kindly why not. The
answer states the offer as the rules pay it (paid now on joining, or on which first purchase; any hold)."""
import logging
from typing import Any

from bot import notices
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, carries_code
from bot.line.offer_texts import budget_note, joined, offer_text, referral_ok
from handlers.common import text
from handlers.friend_coupon import friend_coupon_messages
from rewards.referrals import Attribution

router = Router("referral_code")
log = logging.getLogger(__name__)


@router.on(MessageEvent, carries_code)
async def on_code(ctx: Ctx, code: str) -> None:
    outcome = await ctx.program.attribute(ctx.user_id, code, op=ctx.event_id)
    if not outcome.ok:
        log.info("referral refused for %s: %s (code %s)", ctx.user_id, outcome.reason, code)
        await ctx.answer(text(ctx, refusal(ctx, outcome.reason or "UNKNOWN_CODE")))
        return
    await ctx.answer(*await attribution_accepted(ctx, outcome))
    await notices.after_attribution(ctx.services, outcome, ctx.user_id, op=ctx.event_id)


def refusal(ctx: Ctx, reason: str) -> str:
    """Why an attribution was refused; ALREADY_REFERRED also says when the bonus comes, which the rules decide."""
    if reason == "ALREADY_REFERRED":
        return offer_text(ctx.t, "refused_ALREADY_REFERRED", ctx.program.referral_offer())
    return ctx.t(f"refused_{reason}", days=ctx.program.rules.referral_window_days)


async def attribution_accepted(ctx: Ctx, outcome: Attribution) -> list[dict[str, Any]]:
    """What the friend is told when their attribution is accepted, in chat: after a code message, and in the
    reply to the follow that completes an attribution begun on the LIFF page. One place, so both say the same:
    the referral counted as the rules pay it (with the referrer's share when they give it away, 相手に譲る),
    and the welcome coupon when the rules give one."""
    referrer = await ctx.program.member(outcome.referrer) if outcome.referrer else None
    offer = await ctx.program.offer_of_referral(ctx.user_id, gift=bool(referrer and referrer.gift))
    budget = ctx.program.budget  # [budget]: held on joining, or a promise for later while the budget is reached
    if await budget.is_held(ctx.user_id):
        said = [text(ctx, ctx.t("referral_ok_held", friend_points=f"{offer.friend_points:,}"))]
    else:
        said = [text(ctx, joined(referral_ok(ctx.t, offer), budget_note(ctx.t, await budget.referral_paused())))]
    return said + friend_coupon_messages(ctx, outcome.coupon, await ctx.program.friend_coupons.rule_of(ctx.user_id))
