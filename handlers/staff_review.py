"""審査待ち / review: referrals held for review (the friend's order carried a fingerprint of the referrer's)
with approve / void buttons; pending referrals can be voided from the API."""
from __future__ import annotations

from dataclasses import dataclass

from bot import notices
from bot.chat.context import Ctx
from bot.chat.postback import PostbackData
from bot.chat.router import MessageEvent, PostbackEvent, Router, postback, words
from bot.chat.staff import is_staff
from bot.line.limits import TEXT_MAX, clip
from handlers.staff_common import WORD_REVIEW, postback_button, staff_text
from rewards import codes
from rewards.errors import ProgramError
from rewards.review import ReferralReview

router = Router("staff_review")
SHOWN = 5  # two buttons each, within LINE's 13 quick replies next to the staff ones


@dataclass(frozen=True)
class ApproveReferral(PostbackData):
    prefix = "staff.ok"
    friend: str


@dataclass(frozen=True)
class VoidReferral(PostbackData):
    prefix = "staff.void"
    friend: str


async def code_of(ctx: Ctx, uid: str) -> str:
    view = await ctx.program.member(uid)
    return codes.display(view.code) if view and view.code else uid[:9] + "…"


@router.on(MessageEvent, words(*WORD_REVIEW), is_staff)
async def on_review(ctx: Ctx) -> None:
    waiting = await ReferralReview(ctx.program).referrals("review")
    if not waiting:
        await ctx.answer(staff_text(ctx, ctx.t("staff_review_none")))
        return
    lines, buttons = [ctx.t("staff_review_title", count=len(waiting))], []
    for n, ref in enumerate(waiting[:SHOWN], start=1):
        lines.append(ctx.t("staff_review_line", n=n, friend=ref["friend"], referrer=await code_of(ctx, ref["referrer"]),
                           order=ref.get("order", "-")))
        if ref.get("ring"):  # [rings]: a flagged group, its score and reasons (held, or flagged only)
            lines.append(ctx.t("staff_review_ring_line", score=ref.get("ring_score", ""),
                               reasons=ref.get("ring_reasons", ""), status=ref.get("status", "")))
        buttons += [postback_button(ctx.t("staff_review_approve_label", n=n), ctx.pack(ApproveReferral(ref["friend"])),
                                    ctx.t("staff_review_approve_label", n=n)),
                    postback_button(ctx.t("staff_review_void_label", n=n), ctx.pack(VoidReferral(ref["friend"])),
                                    ctx.t("staff_review_void_label", n=n))]
    await ctx.answer({"type": "text", "text": clip("\n".join(lines), TEXT_MAX), "quickReply": {"items": buttons}})


async def decide(ctx: Ctx, friend: str, approve: bool) -> None:
    review = ReferralReview(ctx.program)
    if approve and await review.flagged_only(friend):  # [rings] flag mode: approving clears the flag only
        await review.dismiss_ring(friend, ctx.user_id)
        await ctx.answer(staff_text(ctx, ctx.t("staff_review_ring_cleared", friend=friend)))
        return
    try:  # audited too, once per referral (a retry audits what the first try decided and did not audit)
        decision = await (review.approve(friend, ctx.user_id) if approve else review.void(friend, ctx.user_id))
    except ProgramError as refused:
        await ctx.answer(staff_text(ctx, ctx.t(f"staff_review_refused_{refused.code}")))
        return
    await notices.after_review_decision(ctx.services, decision)
    key = "staff_review_approved" if approve else "staff_review_voided"
    await ctx.answer(staff_text(ctx, ctx.t(key, friend=friend)))


@router.on(PostbackEvent, postback(ApproveReferral), is_staff)
async def on_approve(ctx: Ctx, data: ApproveReferral) -> None:
    await decide(ctx, data.friend, approve=True)


@router.on(PostbackEvent, postback(VoidReferral), is_staff)
async def on_void(ctx: Ctx, data: VoidReferral) -> None:
    await decide(ctx, data.friend, approve=False)
