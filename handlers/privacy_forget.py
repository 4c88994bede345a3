"""退会 / delete my data: the member asks to be forgotten. A confirmation first, which says the points are
forfeited (confirm / cancel buttons); confirmed, their data is erased (rewards/privacy.py) and they are told so.

The confirm button carries when it was made and the membership it was made for (the member's first sighting):
a button older than CONFIRM_SECONDS, or one from before an earlier erasure (the same LINE user seen again is a
new member), erases nothing.
"""
from dataclasses import dataclass

from bot.chat.context import Ctx
from bot.chat.postback import PostbackData
from bot.chat.router import MessageEvent, PostbackEvent, Router, keyword, postback
from handlers.common import plain, text

router = Router("privacy_forget")
CONFIRM_SECONDS = 10 * 60


@dataclass(frozen=True)
class ForgetChoice(PostbackData):
    prefix = "forget"
    confirm: bool
    at: int  # when the question was asked (s)
    since: int  # the member's first sighting (ms): which membership the button belongs to


async def _since(ctx: Ctx) -> int:
    return int((await ctx.program.members.record(ctx.user_id)).get("first_seen_at", 0))


def _button(ctx: Ctx, confirm: bool, at: int, since: int) -> dict:
    label = ctx.t("privacy_forget_yes" if confirm else "privacy_forget_no")
    return {"type": "action", "action": {"type": "postback", "label": label,
                                         "data": ctx.pack(ForgetChoice(confirm, at, since)), "displayText": label}}


@router.on(MessageEvent, keyword("forget"))
async def on_forget_word(ctx: Ctx) -> None:
    member = await ctx.program.member(ctx.user_id)
    points = (member.points + member.pending_points) if member else 0
    at, since = ctx.program.now_ms() // 1000, await _since(ctx)
    await ctx.answer(text(ctx, ctx.t("privacy_forget_confirm", points=f"{max(points, 0):,}"),
                          _button(ctx, True, at, since), _button(ctx, False, at, since)))


@router.on(PostbackEvent, postback(ForgetChoice))
async def on_forget_choice(ctx: Ctx, data: ForgetChoice) -> None:
    if not data.confirm:
        await ctx.answer(text(ctx, ctx.t("privacy_forget_cancelled")))
        return
    stale = ctx.program.now_ms() // 1000 - data.at > CONFIRM_SECONDS
    if stale or data.since != await _since(ctx):
        await ctx.answer(text(ctx, ctx.t("privacy_forget_stale")))
        return
    await ctx.program.privacy.erase(ctx.user_id, by="member")  # None: erased already (a double tap): the same
    await ctx.answer(plain(ctx.t("privacy_forget_done")))  # no quick replies: a tap would make them a member again
