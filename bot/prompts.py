"""Asking at the right moment ([prompts] in the rules): which prompt an outcome calls for, and what it says.

- after a purchase of at least the referral minimum, or a custom event the rules mark (a 5★ review): an
  invitation to refer, a compact invite card (share in LINE, or the full card by the invite word);
- a referred friend who has not ordered `reminder_days` after joining: one reminder, with their welcome coupon;
- "you can afford a reward now": once per reward cost the member's points reach.

Each builder answers a `Prompt` or None and sends nothing: bot/notices.py lets it through the member's weekly
cap and once-per-cause gate (rewards/prompts.py) and delivers it like any notice (quiet hours, retry key).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot.line import flex
from bot.line.client import retry_key
from bot.line.limits import TEXT_MAX, clip
from bot.line.links import invite_link
from bot.line.offer_texts import campaign_note, joined, offer_text
from bot.services import Services
from rewards.offer import ReferralOffer
from rewards.orders import Purchase
from rewards.prompts import REMIND_CAUSE, afford_cause

Texts = Callable[..., str]  # t(key, **values): a locale text in the member's language


@dataclass(frozen=True)
class Prompt:
    kind: str  # one of rewards.rules.PROMPT_KINDS
    to: str
    cause: str  # what it follows, for the gate: once per cause ("c:" kept for a week or two, "o:" for good)
    key: str  # its X-Line-Retry-Key, fixed by the cause
    messages: Callable[[str, Texts], list[dict[str, Any]]]  # (the member's language, its texts) -> messages
    may_start: bool = True  # False for a repeated outcome: it may only finish a prompt let through before
    also_told: tuple[str, ...] = ()  # causes settled along with it (the lower reward costs passed at once)


def _quick(t: Texts, label_key: str, word_key: str) -> dict[str, Any]:
    return {"items": [{"type": "action", "action": {"type": "message", "label": t(label_key), "text": t(word_key)}}]}


def _referral_amounts(offer: ReferralOffer) -> dict[str, str]:
    """What each side gets for a referral now, campaigns included (as the invite promises it)."""
    return {"referrer_points": f"{offer.referrer_points:,}", "friend_points": f"{offer.friend_points:,}"}


async def _refer(services: Services, kind: str, uid: str, cause: str, headline_key: str, may_start: bool
                 ) -> Prompt:
    code = await services.program.invite_code(uid)
    link = invite_link(services.settings, code)
    offer = await services.program.offer_for(uid)
    amounts = _referral_amounts(offer)

    def messages(lang: str, t: Texts) -> list[dict[str, Any]]:
        caption = joined(campaign_note(t, offer),
                         offer_text(t, "invite_caption", offer, shop=t("shop_name"), link=link))
        card = flex.render("prompt_invite", t, headline=t(headline_key),
                           share_uri="https://line.me/R/share?text=" + quote(caption), **amounts)
        return [flex.message(t("prompt_invite_alt", **amounts), card)]

    return Prompt(kind, uid, cause, retry_key("prompt", uid, cause), messages, may_start)


async def after_purchase(services: Services, purchase: Purchase, uid: str, order_id: str) -> Prompt | None:
    """An order at least the referral minimum: invite the buyer to refer. A repeat of the order only finishes
    a prompt its first report let through (a crash in between), never starts one."""
    rules = services.program.rules
    if "refer_after_purchase" not in rules.prompts.enabled:
        return None
    if int(purchase.answer.get("amount", 0)) < rules.referral_minimum_order:
        return None
    return await _refer(services, "refer_after_purchase", uid, f"c:order:{order_id}", "prompt_after_purchase",
                        may_start=purchase.new)


async def after_custom_event(services: Services, uid: str, name: str, event_id: str, value: int | None,
                             new: bool) -> Prompt | None:
    """A custom event the rules mark (with its value at least the rules' minimum): invite to refer."""
    if not services.program.rules.prompts.invites_after(name, value):
        return None
    return await _refer(services, "refer_after_event", uid, f"c:event:{name}:{event_id}", "prompt_after_event",
                        may_start=new)


async def reward_in_reach(services: Services, uid: str) -> Prompt | None:
    """The dearest reward the member's points now reach, when they were never told of that cost (nor of any
    dearer one): once per cost. Rewards out of their window, above the member's tier or sold out do not count."""
    program, catalog = services.program, services.catalog
    if "reward_in_reach" not in program.rules.prompts.enabled:
        return None
    view = await program.member(uid)
    if view is None or (program.rules.block_claims_in_debt and view.debt > 0):
        return None
    now = program.now_ms()
    within = [r for r in program.rules.rewards
              if r.cost <= view.points and catalog.available(r, now) and catalog.tier_reached(r, view.tier)]
    stocks = await catalog.stocks_of(within)
    within = [r for r, stock in zip(within, stocks, strict=True) if stock.left != 0]
    if not within:
        return None
    costs = sorted({r.cost for r in within})
    told = await program.prompts.told(uid, [afford_cause(c) for c in costs])
    untold = [c for c in costs if afford_cause(c) not in told]
    told_before = max((c for c in costs if afford_cause(c) in told), default=0)
    if not untold or untold[-1] < told_before:  # told of a dearer one already: a cheaper one is no news
        return None
    best = min((r for r in within if r.cost == untold[-1]), key=lambda r: r.id)
    points = view.points

    def messages(lang: str, t: Texts) -> list[dict[str, Any]]:
        name = best.name.get(lang) or best.name["ja"]
        body = t("prompt_reward_in_reach", points=f"{points:,}", reward=name, cost=f"{best.cost:,}")
        return [{"type": "text", "text": clip(body, TEXT_MAX), "quickReply": _quick(t, "qr_rewards", "word_rewards")}]

    cause = afford_cause(untold[-1])
    return Prompt("reward_in_reach", uid, cause, retry_key("prompt", uid, cause), messages,
                  also_told=tuple(afford_cause(c) for c in untold[:-1]))


async def friend_coupon(services: Services, friend: str) -> str | None:
    """The friend's welcome coupon code, when the program gave them one ([referral.friend_coupon])."""
    return await services.program.friend_coupon(friend)


async def friend_reminder(services: Services, friend: str) -> Prompt | None:
    """The clock found `friend`'s reminder due: one reminder, only while their referral waits for a first
    order (the rules' trigger first_purchase) and they have ordered nothing."""
    program = services.program
    rules = program.rules
    if "friend_reminder" not in rules.prompts.enabled or rules.referral_trigger != "first_purchase":
        return None
    if not await program.prompts.waiting_for_first_order(friend):
        return None
    coupon = await friend_coupon(services, friend)
    offer = await program.offer_of_referral(friend)

    def messages(lang: str, t: Texts) -> list[dict[str, Any]]:
        lines = [offer_text(t, "prompt_friend_reminder", offer, shop=t("shop_name"))]
        if coupon:
            lines.append(t("prompt_friend_reminder_coupon", code=coupon))
        return [{"type": "text", "text": clip("\n".join(lines), TEXT_MAX),
                 "quickReply": _quick(t, "qr_rewards", "word_rewards")}]

    return Prompt("friend_reminder", friend, REMIND_CAUSE, retry_key("prompt", friend, REMIND_CAUSE), messages)
