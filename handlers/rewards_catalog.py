"""特典 / rewards: the catalog as text with a button per reward; a reward's details and a confirm button;
the confirm issues the coupon (once, however often it is tapped) or says kindly why not."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.dispatcher import Ctx, MessageEvent, PostbackEvent, Router, keyword, postback
from bot.links import coupon_link
from bot.postback import PostbackData
from handlers.common import show_loading, text
from rewards.catalog import OUT_OF_STOCK, ClaimResult, Coupon, Stock
from rewards.rules import Reward

router = Router("rewards_catalog")



@dataclass(frozen=True)
class ShowReward(PostbackData):
    prefix = "rw.show"
    reward_id: str


@dataclass(frozen=True)
class ConfirmClaim(PostbackData):
    prefix = "rw.ok"
    claim_id: str


@dataclass(frozen=True)
class CancelClaim(PostbackData):
    prefix = "rw.no"


MAX_REWARD_BUTTONS = 8  # 13 quick replies at most: the rewards, "coupons" and the four main actions
LABEL_MAX = 20


def label(value: str) -> str:
    """A quick-reply label: at most 20 characters."""
    return value if len(value) <= LABEL_MAX else value[:LABEL_MAX - 1] + "…"


def name_of(ctx: Ctx, reward: Reward) -> str:
    return reward.name.get(ctx.lang) or reward.name["ja"]


def coupons_button(ctx: Ctx) -> dict[str, Any]:
    return {"type": "action", "action": {"type": "message", "label": label(ctx.t("qr_coupons")),
                                         "text": ctx.t("word_coupons")}}


def postback_button(button_label: str, data: str, display: str) -> dict[str, Any]:
    return {"type": "action", "action": {"type": "postback", "label": label(button_label), "data": data,
                                         "displayText": display[:300]}}


def stock_note(ctx: Ctx, stock: Stock) -> str | None:
    if stock.left is None:
        return None
    return ctx.t("rewards_sold_out") if stock.left == 0 else ctx.t("rewards_left", left=f"{stock.left:,}")


@router.on(MessageEvent, keyword("rewards"))
async def on_rewards(ctx: Ctx) -> None:
    await show_loading(ctx)
    catalog = ctx.services.catalog
    listings = await catalog.catalog(ctx.user_id)
    member = await ctx.program.member(ctx.user_id)
    lines = [ctx.t("rewards_title", points=f"{member.points if member else 0:,}"), ""]
    for item in listings:
        notes = [n for n in (ctx.t("rewards_tier", tier=item.reward.tier) if item.reward.tier else None,
                             stock_note(ctx, item.stock)) if n]
        lines.append(ctx.t("rewards_line", name=name_of(ctx, item.reward), cost=f"{item.reward.cost:,}",
                           notes=ctx.t("rewards_notes", notes=ctx.t("rewards_note_sep").join(notes)) if notes else ""))
    # a button per reward, the claimable ones first (LINE shows at most 13 quick replies)
    buttons = [postback_button(name_of(ctx, item.reward), ctx.pack(ShowReward(item.reward.id)), name_of(ctx, item.reward))
               for item in sorted(listings, key=lambda item: item.refusal is not None)[:MAX_REWARD_BUTTONS]]
    if not listings:
        lines = [ctx.t("rewards_none", points=f"{member.points if member else 0:,}")]
    else:
        lines += ["", ctx.t("rewards_pick")]
    await ctx.answer(text(ctx, "\n".join(lines), *buttons, coupons_button(ctx)))


@router.on(PostbackEvent, postback(ShowReward))
async def on_show(ctx: Ctx, data: ShowReward) -> None:
    offer = await ctx.services.catalog.show(ctx.user_id, data.reward_id)
    if offer is None:
        await ctx.answer(text(ctx, ctx.t("claim_refused_NOT_AVAILABLE")))
        return
    reward = offer.reward
    details = [name_of(ctx, reward)]
    description = reward.description.get(ctx.lang) or reward.description.get("ja", "")
    if description:
        details.append(description)
    details += ["", ctx.t("reward_cost", cost=f"{reward.cost:,}", points=f"{offer.points:,}")]
    note = stock_note(ctx, offer.stock)
    if note:
        details.append(ctx.t("reward_stock", stock=note))
    if reward.tier:
        details.append(ctx.t("reward_tier", tier=reward.tier))
    if reward.per_member:
        details.append(ctx.t("reward_per_member", limit=reward.per_member))
    if reward.available_until:
        until = reward.available_until.astimezone(ctx.program.rules.timezone)
        details.append(ctx.t("reward_until", date=until.strftime("%Y/%m/%d %H:%M")))
    if reward.valid_days:
        details.append(ctx.t("reward_valid_days", days=reward.valid_days))
    details.append("")
    if offer.refusal:
        if offer.refusal == OUT_OF_STOCK:  # told once when staff add stock (bot/notices.py)
            await ctx.services.catalog.wait_for_stock(ctx.user_id, reward.id)
        details.append(refusal_text(ctx, offer.refusal, reward, offer.points))
        await ctx.answer(text(ctx, "\n".join(details), coupons_button(ctx)))
        return
    details.append(ctx.t("reward_confirm_question", cost=f"{reward.cost:,}"))
    confirm = postback_button(ctx.t("reward_confirm_label", cost=f"{reward.cost:,}"), ctx.pack(ConfirmClaim(offer.claim_id)),
                              ctx.t("reward_confirm_display", name=name_of(ctx, reward)))
    cancel = postback_button(ctx.t("reward_cancel_label"), ctx.pack(CancelClaim()), ctx.t("reward_cancel_label"))
    await ctx.answer(text(ctx, "\n".join(details), confirm, cancel))


@router.on(PostbackEvent, postback(ConfirmClaim))
async def on_confirm(ctx: Ctx, data: ConfirmClaim) -> None:
    result = await ctx.services.catalog.confirm(ctx.user_id, data.claim_id)
    if not result.ok:
        if result.reason == OUT_OF_STOCK and result.reward is not None:
            await ctx.services.catalog.wait_for_stock(ctx.user_id, result.reward.id)
        member = await ctx.program.member(ctx.user_id)
        points = member.points if member else 0
        await ctx.answer(text(ctx, refusal_text(ctx, result.reason or "UNKNOWN_CLAIM", result.reward, points),
                              coupons_button(ctx)))
        return
    await ctx.answer(text(ctx, claimed_text(ctx, result), coupons_button(ctx)))


@router.on(PostbackEvent, postback(CancelClaim))
async def on_cancel(ctx: Ctx, data: CancelClaim) -> None:
    await ctx.answer(text(ctx, ctx.t("reward_cancelled")))


def refusal_text(ctx: Ctx, reason: str, reward: Reward | None, points: int) -> str:
    values: dict[str, Any] = {"points": f"{points:,}"}
    if reward is not None:
        values.update(cost=f"{reward.cost:,}", short=f"{max(0, reward.cost - points):,}", tier=reward.tier or "",
                      limit=reward.per_member or 0, name=name_of(ctx, reward))
    else:
        values.update(cost="-", short="-", tier="", limit=0, name="")
    return ctx.t(f"claim_refused_{reason}", **values)


def coupon_lines(ctx: Ctx, coupon: Coupon) -> str:
    """The code (when there is one to show) and the coupon's last day."""
    last = ctx.services.catalog.last_day(coupon)
    expires = ctx.t("coupon_expires", date=last.strftime("%Y/%m/%d")) if last else ctx.t("coupon_no_expiry")
    code = ctx.t("coupon_code_line", code=coupon.code) if coupon.issue != "manual" else ctx.t("coupon_manual_line")
    return ctx.t("coupon_lines", code=code, expires=expires)


def claimed_text(ctx: Ctx, result: ClaimResult) -> str:
    assert result.coupon is not None
    coupon = result.coupon
    name = name_of(ctx, result.reward) if result.reward else coupon.reward_id  # a reward since taken out of the rules
    return ctx.t("claim_ok", name=name, lines=coupon_lines(ctx, coupon),
                 link=coupon_link(ctx.services.settings, coupon.token),
                 points=f"{result.balance or 0:,}")
