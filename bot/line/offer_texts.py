"""The referral offer in words: each text about referral points in the variant the rules in force call for
(paid on joining, on a first purchase, on a first purchase of at least some yen), with the amounts the engine
computed (rewards/offer.py), the hold when there is one, and a running campaign's last day.

`say` is a locale lookup in one language: `ctx.t` in a handler, `functools.partial(texts.get, lang)` elsewhere.
The variants are `KEY` (a first purchase), `KEY_min` and `KEY_join` (assets/locales/*.texts.toml), and for
the referrer's own share given away (相手に譲る) `KEY_gift` and `KEY_gift_join`."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from rewards.offer import ReferralOffer

Say = Callable[..., str]


def terms_key(key: str, offer: ReferralOffer, to_referrer: bool = False) -> str:
    """The variant of `key` that states the offer's condition truthfully. A text `to_referrer` about their
    own share has a variant for a referrer who gives it away (KEY_gift, KEY_gift_join)."""
    if to_referrer and offer.gift:
        return f"{key}_gift_join" if offer.on_join else f"{key}_gift"
    if offer.on_join:
        return f"{key}_join"
    if offer.minimum_order:
        return f"{key}_min"
    return key


def offer_text(say: Say, key: str, offer: ReferralOffer, to_referrer: bool = False, **values: object) -> str:
    """`key` in the rules' variant, with the offer's numbers (and any `values` the text takes besides)."""
    numbers = {"friend_points": f"{offer.friend_points:,}", "referrer_points": f"{offer.referrer_points:,}",
               "yen": f"{offer.minimum_order:,}"}
    return say(terms_key(key, offer, to_referrer), **{**numbers, **values})


def hold_note(say: Say, offer: ReferralOffer) -> str | None:
    """That the points wait a while before they can be spent, when the rules hold them."""
    return say("offer_hold", days=offer.hold_days) if offer.hold_days else None


def campaign_note(say: Say, offer: ReferralOffer) -> str | None:
    """The running campaign that boosts the amounts, and its last day; None when nothing boosts them."""
    if not offer.boosted or offer.boost_ends is None:
        return None
    return say("offer_campaign", until=last_moment(say, offer.boost_ends))


def budget_note(say: Say, paused: bool) -> str | None:
    """From the moment the month's referral budget is reached ([budget]): rewards earned now are not paid now,
    but from next month as the budget allows. None while the budget pays."""
    return say("offer_budget_paused") if paused else None


def referral_ok(say: Say, offer: ReferralOffer) -> str:
    """What the friend is told once attributed (in chat, or pushed after the LIFF page): the offer as the rules
    pay it, the hold, and while a first purchase is still to come, the campaign's last day."""
    campaign = None if offer.on_join else campaign_note(say, offer)  # joining paid already: nothing to hurry
    return joined(offer_text(say, "referral_ok", offer), hold_note(say, offer), campaign)


def last_moment(say: Say, ends: datetime) -> str:
    """A campaign's end (exclusive, shop time) as people read it: the last day it runs (12月31日 / Dec 31),
    with the hour when it does not end at midnight (12月31日 18:00)."""
    if (ends.hour, ends.minute, ends.second, ends.microsecond) == (0, 0, 0, 0):
        day = ends - timedelta(days=1)
        return say("offer_date", month=month_name(say, day.month), day=day.day)
    return say("offer_date_time", month=month_name(say, ends.month), day=ends.day, time=ends.strftime("%H:%M"))


def month_name(say: Say, month: int) -> str:
    """The month as the locale writes it in a date (12 in 12月31日, Dec in Dec 31): its `offer_months` list."""
    return say("offer_months").split()[month - 1]


def joined(*parts: str | None, sep: str = "\n") -> str:
    """The parts that are there, one a line."""
    return sep.join(p for p in parts if p)
