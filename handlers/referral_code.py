"""A message carrying an invite code: attribute the sender to the code's owner, or say kindly why not. The
answer states the offer as the rules pay it (paid now on joining, or on which first purchase; any hold)."""
import logging

from bot import notices
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, carries_code
from bot.line.offer_texts import campaign_note, hold_note, joined, offer_text
from handlers.common import text

router = Router("referral_code")
log = logging.getLogger(__name__)


@router.on(MessageEvent, carries_code)
async def on_code(ctx: Ctx, code: str) -> None:
    rules, offer = ctx.program.rules, ctx.program.referral_offer()
    outcome = await ctx.program.attribute(ctx.user_id, code, op=ctx.event_id)
    if not outcome.ok:
        log.info("referral refused for %s: %s (code %s)", ctx.user_id, outcome.reason, code)
        if outcome.reason == "ALREADY_REFERRED":  # it says when the bonus comes, which the rules decide
            refusal = offer_text(ctx.t, "refused_ALREADY_REFERRED", offer)
        else:
            refusal = ctx.t(f"refused_{outcome.reason}", days=rules.referral_window_days)
        await ctx.answer(text(ctx, refusal))
        return
    referrer = await ctx.program.member(outcome.referrer) if outcome.referrer else None
    offer = ctx.program.referral_offer(gift=bool(referrer and referrer.gift))  # 相手に譲る: their share too
    # joining paid already: no campaign to hurry for; a first purchase still has to come in time
    campaign = None if offer.on_join else campaign_note(ctx.t, offer)
    await ctx.answer(text(ctx, joined(offer_text(ctx.t, "referral_ok", offer), hold_note(ctx.t, offer), campaign)))
    await notices.after_attribution(ctx.services, outcome, ctx.user_id, op=ctx.event_id)
