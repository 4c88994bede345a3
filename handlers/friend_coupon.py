"""The referred friend's welcome coupon as a card: the code (a button copies it), the offer and its conditions,
a button to its page. Shown in the answer to the code message; the coupons view lists it with the others."""
from __future__ import annotations

from typing import Any

from bot.chat.context import Ctx
from bot.line.flex import cut
from bot.line.links import coupon_link
from handlers.common import card, note, render, text
from rewards.coupons import Coupon
from rewards.rules import FRIEND_COUPON_POOL, FriendCoupon

NAME_MAX = 60


def is_friend_coupon(coupon: Coupon) -> bool:
    return coupon.reward_id == FRIEND_COUPON_POOL


def offer_name(ctx: Ctx, rule: FriendCoupon | None) -> str:
    """The offer in the member's language ("¥500 off your first order"), as the rules name it."""
    if rule is None:
        return ctx.t("friend_coupon_headline")
    return cut(rule.name.get(ctx.lang) or rule.name["ja"], NAME_MAX)


def conditions(ctx: Ctx, coupon: Coupon, rule: FriendCoupon | None) -> list[str]:
    """What a friend must know to use it: the first order, the minimum, the last day."""
    lines = [ctx.t("friend_coupon_first_order")]
    if rule is not None and rule.minimum_order:
        lines.append(ctx.t("friend_coupon_minimum", amount=f"{rule.minimum_order:,}"))
    last = ctx.services.catalog.last_day(coupon)
    lines.append(ctx.t("coupon_expires", date=last.strftime("%Y/%m/%d")) if last else ctx.t("coupon_no_expiry"))
    return lines


def coupons_quick_reply(ctx: Ctx) -> dict[str, Any]:
    return {"type": "action", "action": {"type": "message", "label": ctx.t("qr_coupons"), "text": ctx.t("word_coupons")}}


def friend_coupon_messages(ctx: Ctx, coupon: Coupon | None, rule: FriendCoupon | None) -> list[dict[str, Any]]:
    """The card for a coupon just given (or given before: a redelivery shows the same); when the rules give one
    but none came (the shop's pool is empty), a line saying it will follow; nothing when the rules give none.
    `rule`: the coupon the friend's referral gives (rewards/friend_coupons.py rule_of: an experiment arm's)."""
    if coupon is None:
        return [text(ctx, ctx.t("friend_coupon_owed"))] if rule is not None else []
    contents = render(ctx, "friend_coupon", name=offer_name(ctx, rule), code=coupon.code,
                      rows=[note(ctx, line) for line in conditions(ctx, coupon, rule)],
                      note=note(ctx, ctx.t("friend_coupon_how")), link=coupon_link(ctx.services.settings, coupon.token))
    return [card(ctx, ctx.t("friend_coupon_alt", code=coupon.code), contents, coupons_quick_reply(ctx))]
