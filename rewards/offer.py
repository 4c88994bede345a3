"""The referral offer as it stands now: what each side would get, on what condition, and until when a campaign
boosts it. Every text that tells members about referral points (the invite card and page, the code answer,
the notices) reads this one value, so the chat always says what the rules in force would pay. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rewards import engine
from rewards.rules import Rules

REFERRAL_RULES = ("referral.referrer", "referral.friend")


@dataclass(frozen=True)
class ReferralOffer:
    referrer_points: int  # the referrer's share now, campaigns included (the engine's amount)
    friend_points: int  # what the friend would get, the referrer's share too when it is given (gift)
    trigger: str  # first_purchase | join
    minimum_order: int  # yen the friend's first order must reach (first_purchase only; 0: any)
    hold_days: int  # days the points stay on hold once paid (0: spendable at once)
    boosted: bool  # a campaign raises either amount now
    boost_ends: datetime | None  # shop time, exclusive: when the first campaign behind the boost ends
    gift: bool = False  # 相手に譲る: the referrer's share goes to the friend (and is in friend_points)

    @property
    def on_join(self) -> bool:
        return self.trigger == "join"


def referral_offer(rules: Rules, at_ms: int, gift: bool = False, base: tuple[int, int] | None = None
                   ) -> ReferralOffer:
    """The offer at `at_ms`, its amounts computed by the engine exactly as a payment at that moment would be;
    `gift`: the referrer gives their share to the friend (honoured only when the rules allow it); `base`: the
    (referrer, friend) points before campaigns when an experiment's arm decides them (rewards/experiments.py),
    else [referral]'s."""
    base_referrer, base_friend = base or (rules.referrer_points, rules.friend_points)
    referrer = engine.award(rules, "referral.referrer", base_referrer, at_ms, "offer", "referral").amount
    friend = engine.award(rules, "referral.friend", base_friend, at_ms, "offer", "referral").amount
    at = engine.shop_time(rules, at_ms)
    in_effect = [c for rule in REFERRAL_RULES for c in engine.campaigns_in_effect(rules.campaigns, rule, at)]
    boosted = (referrer, friend) != (base_referrer, base_friend)
    ends = min((c.ends for c in in_effect), default=None) if boosted else None
    gift = gift and rules.allow_gift
    return ReferralOffer(
        referrer_points=referrer, friend_points=friend + referrer if gift else friend,
        trigger=rules.referral_trigger, gift=gift,
        minimum_order=rules.referral_minimum_order if rules.referral_trigger == "first_purchase" else 0,
        hold_days=rules.referral_hold_days, boosted=boosted,
        boost_ends=ends.astimezone(rules.timezone) if ends else None)
