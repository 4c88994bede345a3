"""連携 / link: link the member's LINE account to their shop account (LINE's account link).

The word (or the member card's button) issues a link token and sends a button to the shop's login page
(SHOP_LINK_URL?linkToken=…). The shop's server, once its customer logged in, asks POST /api/v1/account-links
for a nonce and sends the customer to LINE's dialog; LINE then sends the accountLink event handled here.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from linebot.v3.webhooks import AccountLinkEvent

from bot import notices
from bot.chat.context import Ctx
from bot.chat.postback import PostbackData
from bot.chat.router import MessageEvent, PostbackEvent, Router, keyword, postback
from bot.line.client import LineRejected
from handlers.common import card, render, show_loading, text
from rewards.links import LinkOutcome

log = logging.getLogger(__name__)
router = Router("account_link")


class Relink(PostbackData):
    prefix = "link.again"


def link_url(base: str, token: str) -> str:
    """SHOP_LINK_URL with linkToken added to whatever query it already has."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "linkToken"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*query, ("linkToken", token)]),
                       parts.fragment))


def masked(customer_id: str) -> str:
    """A customer id as we show it in chat: its end, at most 4 characters and at most half of it (a phone seen by
    someone else shows no more)."""
    shown = min(4, len(customer_id) // 2)
    return "****" + (customer_id[-shown:] if shown else "")


def say_link(ctx: Ctx) -> dict[str, Any]:
    """A message action sending 連携 / link (quick replies and the member card)."""
    return {"type": "message", "label": ctx.t("link_member_button"), "text": ctx.t("link_word")}


def member_card_part(ctx: Ctx, customer_id: str | None) -> dict[str, Any] | None:
    """The member card's account-link line: linked (masked id), or not with a button; nothing when the shop
    offers no account link."""
    if not ctx.services.settings.shop_link_url:
        return None
    if customer_id:
        return render(ctx, "_member_link", state=ctx.t("link_member_linked", customer=masked(customer_id)),
                      button=None)
    button = render(ctx, "_button", style="secondary", action=say_link(ctx))
    return render(ctx, "_member_link", state=ctx.t("link_member_unlinked"), button=button)


async def _link_card(ctx: Ctx, body: str, label_key: str) -> None:
    """Issue a link token and send the button to the shop's login page."""
    base = ctx.services.settings.shop_link_url
    assert base is not None
    try:
        token = await ctx.services.line.issue_link_token(ctx.user_id)
    except (LineRejected, RuntimeError) as exc:
        log.warning("link token not issued for %s: %s", ctx.user_id, exc)
        await ctx.answer(text(ctx, ctx.t("link_error")))
        return
    await ctx.program.links.remember_link_token(token, ctx.user_id)
    button = render(ctx, "_button", style="primary",
                    action={"type": "uri", "label": ctx.t(label_key), "uri": link_url(base, token)})
    await ctx.answer(card(ctx, ctx.t("link_card_alt"), render(ctx, "account_link", body=body, buttons=[button])))


@router.on(MessageEvent, keyword("link"))
async def on_link(ctx: Ctx) -> None:
    if not ctx.services.settings.shop_link_url:
        await ctx.answer(text(ctx, ctx.t("link_unavailable")))
        return
    show_loading(ctx)
    customer_id = await ctx.program.links.customer_of(ctx.user_id)
    if customer_id:  # linked: say so, and offer to link again (a token only when they ask for it)
        relink = render(ctx, "_button", style="secondary",
                        action={"type": "postback", "label": ctx.t("link_relink_button"),
                                "data": ctx.pack(Relink()), "displayText": ctx.t("link_relink_button")})
        body = ctx.t("link_already", customer=masked(customer_id)) + "\n" + ctx.t("link_already_body")
        await ctx.answer(card(ctx, ctx.t("link_already", customer=masked(customer_id)),
                              render(ctx, "account_link", body=body, buttons=[relink])))
        return
    await _link_card(ctx, ctx.t("link_card_body"), "link_button")


@router.on(PostbackEvent, postback(Relink))
async def on_relink(ctx: Ctx, data: Relink) -> None:
    if not ctx.services.settings.shop_link_url:
        await ctx.answer(text(ctx, ctx.t("link_unavailable")))
        return
    await _link_card(ctx, ctx.t("link_card_body"), "link_button")


@router.on(AccountLinkEvent)
async def on_account_link(ctx: Ctx) -> None:
    event = ctx.event
    assert isinstance(event, AccountLinkEvent)
    outcome = await ctx.program.links.account_link(ctx.user_id, str(event.link.result), str(event.link.nonce),
                                                   ctx.event_id)
    if outcome.ok:
        await notices.after_link(ctx.services, ctx.user_id, outcome.customer_id)
    for order_id, purchase in outcome.credited:  # the referral it completed, the tier it reached
        await notices.after_purchase(ctx.services, purchase, ctx.user_id, order_id)
    await ctx.answer(text(ctx, told(ctx, outcome)))


def told(ctx: Ctx, outcome: LinkOutcome) -> str:
    if not outcome.ok or outcome.customer_id is None:
        return ctx.t("link_refused")
    said = ctx.t("link_done", customer=masked(outcome.customer_id))
    if outcome.moved_from_customer:
        said += ctx.t("link_moved", customer=masked(outcome.moved_from_customer))
    points = sum(int(p.answer.get("points_awarded", 0)) for _, p in outcome.credited if p.new)
    orders = sum(1 for _, p in outcome.credited if p.new)
    if orders:
        said += ctx.t("link_credited", orders=orders, points=f"{points:,}")
    return said
