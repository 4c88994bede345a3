"""A follow: a new friend gets the welcome and signup points; an unblock gets a welcome back, nothing more."""
from bot.chat.context import Ctx
from bot.chat.router import FollowEvent, Router
from handlers.common import text

router = Router("follow")


@router.on(FollowEvent)
async def on_follow(ctx: Ctx) -> None:
    if ctx.member_is_new:
        language = await ctx.services.line.profile_language(ctx.user_id)
        if language:
            await ctx.program.set_line_language(ctx.user_id, language)
            ctx.lang = ctx.services.texts.lang_for(language)
    points = 0
    if not ctx.event.follow.is_unblocked:  # signup's op id makes it once per member, ever
        points = await ctx.program.welcome_points(ctx.user_id, ctx.event.timestamp, ctx.event_id)
    body = ctx.t("welcome_new", points=points) if points else ctx.t("welcome_back")
    await ctx.answer(text(ctx, body))
