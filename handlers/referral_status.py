"""紹介状況 / referrals: how many friends were invited, are still waiting (and for what), completed; the
newest few, named as handlers/names.py names people everywhere; a running campaign that boosts referral
points; and how many friends away the next milestone bonus is (only when the rules have milestones)."""
from bot.chat.context import Ctx
from bot.chat.router import MessageEvent, Router, keyword
from bot.line.offer_texts import campaign_note
from handlers.common import card, note, render, row
from handlers.names import person_name
from rewards.referrals import FriendReferral

router = Router("referral_status")


def state_of(ctx: Ctx, friend: FriendReferral) -> str:
    if friend.needs == "FIRST_PURCHASE" and friend.minimum_order:
        return ctx.t("flex_refs_state_FIRST_PURCHASE_MIN", yen=f"{friend.minimum_order:,}")
    if friend.needs:
        return ctx.t(f"flex_refs_state_{friend.needs}")
    return ctx.t(f"flex_refs_state_{friend.status}")


@router.on(MessageEvent, keyword("referral_status"))
async def on_referral_status(ctx: Ctx) -> None:
    status = await ctx.program.referral_status(ctx.user_id)
    counts = status.referrals
    friends = [row(ctx, person_name(ctx, f.user_id, f.nickname), state_of(ctx, f)) for f in status.friends]
    if status.next_milestone and status.to_next_milestone:
        milestone = note(ctx, ctx.t("flex_refs_milestone", left=status.to_next_milestone,
                                    points=f"{status.next_milestone.points:,}"))
    elif ctx.program.rules.milestones:
        milestone = note(ctx, ctx.t("flex_refs_milestone_none"))
    else:
        milestone = None
    campaign = campaign_note(ctx.t, ctx.program.referral_offer())
    contents = render(ctx, "referral_status", invited=str(counts.invited), pending=str(counts.pending),
                      completed=str(counts.completed), milestone=milestone,
                      campaign=render(ctx, "_campaign", text=campaign) if campaign else None,
                      friends=friends or [note(ctx, ctx.t("flex_refs_empty"))])
    alt = ctx.t("flex_refs_alt", invited=counts.invited, pending=counts.pending, completed=counts.completed)
    await ctx.answer(card(ctx, alt, contents))
