"""A message carrying an invite code: attribute the sender to the code's owner, or say kindly why not."""
import logging

from bot.dispatcher import Ctx, MessageEvent, Router, carries_code
from handlers.common import plain, text

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
    await ctx.answer(text(ctx, ctx.t("referral_ok", friend_points=rules.friend_points)))
    assert outcome.referrer is not None
    referrer_lang = ctx.services.texts.lang_for(await ctx.program.language(outcome.referrer))
    await ctx.notify(outcome.referrer, plain(ctx.services.texts.get(
        referrer_lang, "referral_ok_referrer", referrer_points=rules.referrer_points)))
