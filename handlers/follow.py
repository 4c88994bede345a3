"""A follow: a new friend gets the welcome and signup points; an unblock gets a welcome back, nothing more.

A new friend who opened an invite on the LIFF page first (rewards/pre_follow.py) is attributed now, exactly as
a code message would attribute them (program.attribute with the code they opened, every rule of today), and
hears it in this reply together with the welcome; the referrer hears it as after a code message."""
import logging

from bot import notices
from bot.chat.context import Ctx
from bot.chat.router import FollowEvent, Router
from handlers.common import text
from handlers.referral_code import attribution_accepted, refusal
from rewards.pre_follow import liff_op

router = Router("follow")
log = logging.getLogger(__name__)


@router.on(FollowEvent)
async def on_follow(ctx: Ctx) -> None:
    # a member the shop imported follows for the first time as "not new", and no language is known for them yet
    if ctx.member_is_new or (not ctx.event.follow.is_unblocked and await ctx.program.language(ctx.user_id) is None):
        language = await ctx.services.line.profile_language(ctx.user_id)
        if language:
            await ctx.program.set_line_language(ctx.user_id, language)
            ctx.lang = ctx.services.texts.lang_for(language)
    points = 0
    if not ctx.event.follow.is_unblocked:  # signup's op id makes it once per member, ever
        points = await ctx.program.welcome_points(ctx.user_id, ctx.event.timestamp, ctx.event_id)
        await notices.after_join(ctx.services, ctx.user_id)  # the first follow: once per member, ever
    body = ctx.t("welcome_new", points=points) if points else ctx.t("welcome_back")
    said = [text(ctx, body)]
    # only with LIFF on can anyone have opened an invite before following: without it, no extra read per follow
    liff_on = ctx.member_is_new and ctx.services.settings.liff_id
    awaiting = await ctx.program.pre_follow.awaiting(ctx.user_id) if liff_on else None
    if awaiting is None:
        await ctx.answer(*said)
        return
    # op from the person and the code: a re-run of this event, or the page asking again, is one attribution
    op = liff_op(ctx.user_id, awaiting.code)
    outcome = await ctx.program.attribute(ctx.user_id, awaiting.code, op=op)
    if outcome.ok:
        if not outcome.replay:
            await ctx.program.count("liff_attributions")
        said += await attribution_accepted(ctx, outcome)
    else:
        log.info("LIFF attribution refused at the follow of %s: %s (code %s)", ctx.user_id, outcome.reason,
                 awaiting.code)
        said.append(text(ctx, refusal(ctx, outcome.reason or "UNKNOWN_CODE")))
    await ctx.answer(*said)
    if outcome.ok:
        await notices.after_attribution(ctx.services, outcome, ctx.user_id, op=op)
    await ctx.program.pre_follow.forget(ctx.user_id)
