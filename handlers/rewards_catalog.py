"""特典 / rewards: the catalog as text with a button per reward; a reward's details and a confirm button;
the confirm issues the coupon (once, however often it is tapped) or says kindly why not."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.chat.context import Ctx
from bot.chat.postback import PostbackData
from bot.chat.router import MessageEvent, PostbackEvent, Router, keyword, postback
from bot.line import flex
from bot.line.flex import cut
from bot.line.limits import BUTTON_LABEL_MAX, DISPLAY_TEXT_MAX, QUICK_REPLY_LABEL_MAX, clip
from bot.line.links import coupon_link
from handlers.common import card, note, render, show_loading, text, tier_label
from rewards.catalog import OUT_OF_STOCK
from rewards.coupons import Coupon
from rewards.inventory import Stock
from rewards.rules import SHOPIFY_DISCOUNT, Reward

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


def label(value: str) -> str:
    """A quick-reply label: at most 20 characters."""
    return clip(value, QUICK_REPLY_LABEL_MAX, "…")


def name_of(ctx: Ctx, reward: Reward) -> str:
    return reward.name.get(ctx.lang) or reward.name["ja"]


def coupons_button(ctx: Ctx) -> dict[str, Any]:
    return {"type": "action", "action": {"type": "message", "label": label(ctx.t("qr_coupons")),
                                         "text": ctx.t("word_coupons")}}


def postback_button(button_label: str, data: str, display: str) -> dict[str, Any]:
    return {"type": "action", "action": {"type": "postback", "label": label(button_label), "data": data,
                                         "displayText": clip(display, DISPLAY_TEXT_MAX)}}


def stock_note(ctx: Ctx, stock: Stock) -> str | None:
    if stock.left is None:
        return None
    return ctx.t("rewards_sold_out") if stock.left == 0 else ctx.t("rewards_left", left=f"{stock.left:,}")


@dataclass(frozen=True)
class RewardsPage(PostbackData):
    prefix = "rw.page"
    page: int


PAGE_SIZE = 10  # a head bubble, ten rewards and a "more" bubble: LINE's 12 at most
NAME_MAX = 60


def flex_postback(ctx: Ctx, button_label: str, data: str, display: str, style: str = "secondary") -> dict[str, Any]:
    return render(ctx, "_button", style=style, action={"type": "postback", "label": cut(button_label, BUTTON_LABEL_MAX),
                                                       "data": data, "displayText": clip(display, DISPLAY_TEXT_MAX)})


@router.on(MessageEvent, keyword("rewards"))
async def on_rewards(ctx: Ctx) -> None:
    show_loading(ctx)
    await show_catalog(ctx, 0)


@router.on(PostbackEvent, postback(RewardsPage))
async def on_rewards_page(ctx: Ctx, data: RewardsPage) -> None:
    await show_catalog(ctx, max(0, data.page))


async def show_catalog(ctx: Ctx, page: int) -> None:
    """A carousel: the balance, up to ten rewards (the claimable ones first) and a "more" bubble."""
    member = await ctx.program.member(ctx.user_id)
    if member is None:  # cannot happen after a sighting, but never answer with nothing
        return
    listings = sorted(await ctx.services.catalog.catalog(ctx.user_id, member), key=lambda item: item.refusal is not None)
    points = f"{member.points:,}"
    if not listings:
        await ctx.answer(text(ctx, ctx.t("rewards_none", points=points), coupons_button(ctx)))
        return
    shown = listings[page * PAGE_SIZE:(page + 1) * PAGE_SIZE] or listings[:PAGE_SIZE]
    # the head first, the rewards to its right (a carousel runs left to right), so its hint says swipe left
    bubbles = [render(ctx, "catalog_head", points=points)]
    for item in shown:
        notes = [n for n in (ctx.t("rewards_tier", tier=tier_label(ctx, item.reward.tier)) if item.reward.tier else None,
                             stock_note(ctx, item.stock)) if n]
        name = cut(name_of(ctx, item.reward), NAME_MAX)
        bubbles.append(render(ctx, "reward", name=name, cost=f"{item.reward.cost:,}",
                              notes=[note(ctx, ctx.t("rewards_note_sep").join(notes))] if notes else None,
                              style="primary" if item.refusal is None else "secondary",
                              action={"type": "postback", "label": ctx.t("flex_reward_details"),
                                      "data": ctx.pack(ShowReward(item.reward.id)), "displayText": clip(name, DISPLAY_TEXT_MAX)}))
    left = len(listings) - (page + 1) * PAGE_SIZE
    if left > 0:
        bubbles.append(render(ctx, "reward_more", left=left,
                              action={"type": "postback", "label": ctx.t("flex_catalog_more_button"),
                                      "data": ctx.pack(RewardsPage(page + 1)),
                                      "displayText": ctx.t("flex_catalog_more_button")}))
    # a quick reply per reward as well, for those who would rather tap below (13 at most)
    buttons = [postback_button(name_of(ctx, item.reward), ctx.pack(ShowReward(item.reward.id)), name_of(ctx, item.reward))
               for item in listings[:MAX_REWARD_BUTTONS]]
    await ctx.answer(card(ctx, ctx.t("flex_catalog_alt", points=points), flex.carousel(bubbles),
                          *buttons, coupons_button(ctx)))


@router.on(PostbackEvent, postback(ShowReward))
async def on_show(ctx: Ctx, data: ShowReward) -> None:
    offer = await ctx.services.catalog.show(ctx.user_id, data.reward_id)
    if offer is None:
        await ctx.answer(text(ctx, ctx.t("claim_refused_NOT_AVAILABLE")))
        return
    reward = offer.reward
    name = cut(name_of(ctx, reward), NAME_MAX)
    description = reward.description.get(ctx.lang) or reward.description.get("ja", "")
    details = [ctx.t("reward_cost", cost=f"{reward.cost:,}", points=f"{offer.points:,}")]
    stock = stock_note(ctx, offer.stock)
    if stock:
        details.append(ctx.t("reward_stock", stock=stock))
    if reward.tier:
        details.append(ctx.t("reward_tier", tier=tier_label(ctx, reward.tier)))
    if reward.per_member:
        details.append(ctx.t("reward_per_member", limit=reward.per_member))
    if reward.available_until:
        until = reward.available_until.astimezone(ctx.program.rules.timezone)
        details.append(ctx.t("reward_until", date=until.strftime("%Y/%m/%d %H:%M")))
    if reward.valid_days:
        details.append(ctx.t("reward_valid_days", days=reward.valid_days))
    alt = ctx.t("flex_detail_alt", name=name, cost=f"{reward.cost:,}")
    if offer.refusal:
        if offer.refusal == OUT_OF_STOCK:  # told once when staff add stock (bot/notices.py)
            await ctx.services.catalog.wait_for_stock(ctx.user_id, reward.id)
        contents = render(ctx, "reward_detail", name=name, description=note(ctx, description) if description else None,
                          rows=[note(ctx, line) for line in details],
                          note=note(ctx, refusal_text(ctx, offer.refusal, reward, offer.points)),
                          buttons=[render(ctx, "_button", style="secondary", action=coupons_button(ctx)["action"])])
        await ctx.answer(card(ctx, alt, contents, coupons_button(ctx)))
        return
    confirm = flex_postback(ctx, ctx.t("reward_confirm_label", cost=f"{reward.cost:,}"),
                            ctx.pack(ConfirmClaim(offer.claim_id)), ctx.t("reward_confirm_display", name=name),
                            style="primary")
    cancel = flex_postback(ctx, ctx.t("reward_cancel_label"), ctx.pack(CancelClaim()), ctx.t("reward_cancel_label"))
    contents = render(ctx, "reward_detail", name=name, description=note(ctx, description) if description else None,
                      rows=[note(ctx, line) for line in details],
                      note=note(ctx, ctx.t("reward_confirm_question", cost=f"{reward.cost:,}")),
                      buttons=[confirm, cancel])
    await ctx.answer(card(ctx, alt, contents))


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
    assert result.coupon is not None
    name = cut(name_of(ctx, result.reward) if result.reward else result.coupon.reward_id, NAME_MAX)
    contents = coupon_card(ctx, result.coupon, name, ctx.t("flex_coupon_issued"), "#06C755",
                           balance=ctx.t("flex_coupon_balance", points=f"{result.balance or 0:,}"))
    await ctx.answer(card(ctx, ctx.t("flex_coupon_alt", name=name), contents, coupons_button(ctx)))


def coupon_card(ctx: Ctx, coupon: Coupon, name: str, headline: str, color: str, balance: str | None = None
                ) -> dict[str, Any]:
    """A coupon as a bubble: the code (when there is one to show), the last day, a button to its page."""
    last = ctx.services.catalog.last_day(coupon)
    lines = [ctx.t("coupon_code_line", code=coupon.code) if coupon.issue != "manual" else ctx.t("coupon_manual_line"),
             ctx.t("coupon_expires", date=last.strftime("%Y/%m/%d")) if last else ctx.t("coupon_no_expiry")]
    if balance:
        lines.append(balance)
    return render(ctx, "coupon", headline=headline, color=color, name=name, rows=[note(ctx, line) for line in lines],
                  note=note(ctx, ctx.t("flex_coupon_show_online" if coupon.issue == SHOPIFY_DISCOUNT
                                       else "flex_coupon_show")),
                  link=coupon_link(ctx.services.settings, coupon.token))


@router.on(PostbackEvent, postback(CancelClaim))
async def on_cancel(ctx: Ctx, data: CancelClaim) -> None:
    await ctx.answer(text(ctx, ctx.t("reward_cancelled")))


def refusal_text(ctx: Ctx, reason: str, reward: Reward | None, points: int) -> str:
    values: dict[str, Any] = {"points": f"{points:,}"}
    if reward is not None:
        values.update(cost=f"{reward.cost:,}", short=f"{max(0, reward.cost - points):,}", tier=tier_label(ctx, reward.tier) if reward.tier else "",
                      limit=reward.per_member or 0, name=name_of(ctx, reward))
    else:
        values.update(cost="-", short="-", tier="", limit=0, name="")
    return ctx.t(f"claim_refused_{reason}", **values)
