"""The premiums law (景品表示法) check run when the rules load: each reward that depends on a purchase, or
whose winner or value chance decides, against the Consumer Affairs Agency's caps (docs/rules.md, "Premiums law").

- 総付景品 (given to every buyer who qualifies): at most 20% of the transaction value, and ¥200 is allowed
  whatever the value (so under ¥1,000 the cap is ¥200).
- 一般懸賞 (won by chance): each prize at most 20 times the transaction value and never over ¥100,000; all
  prizes together at most 2% of the expected sales of the transactions that take part.

Values are in yen through `[points] point_value_yen`. The transaction value is the rule's minimum order (0
when any order qualifies: then only the ¥200 floor is allowed). A reward is valued at its highest: the
strongest campaign and the highest tier multiplier that may apply to it. Pure: no Redis, no I/O.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rewards import engine
from rewards.rules import Rules

log = logging.getLogger("rewards.premiums")

SOHU_RATE = 0.2  # 総付景品: 20% of the transaction value…
SOHU_FLOOR_YEN = 200  # …and at least ¥200 is allowed
KENSHO_TIMES = 20  # 一般懸賞: a prize up to 20 times the transaction value…
KENSHO_MAX_YEN = 100_000  # …and never over ¥100,000
KENSHO_TOTAL_RATE = 0.02  # all prizes together: 2% of the expected sales


@dataclass(frozen=True)
class Finding:
    setting: str  # where in the rules file, as RulesError names it ("referral.friend_points")
    message: str  # what is over which cap, in yen


def sohu_cap(transaction_yen: int) -> int:
    """The most a premium given to every buyer (総付景品) may be worth for a transaction of that value."""
    return max(SOHU_FLOOR_YEN, math.floor(transaction_yen * SOHU_RATE))


def kensho_cap(transaction_yen: int) -> int:
    """The most one prize won by chance (一般懸賞) may be worth for a transaction of that value."""
    return min(KENSHO_MAX_YEN, transaction_yen * KENSHO_TIMES)


def kensho_total_cap(expected_sales_yen: int) -> int:
    """The most all prizes of one 懸賞 together may be worth, for its expected sales."""
    return math.floor(expected_sales_yen * KENSHO_TOTAL_RATE)


def sohu(setting: str, what: str, value_yen: int, transaction_yen: int) -> Finding | None:
    """A finding when a premium given to every qualifying buyer is over the 総付景品 cap."""
    cap = sohu_cap(transaction_yen)
    if value_yen <= cap:
        return None
    return Finding(setting, f"{what} is worth ¥{value_yen:,}, over the 総付景品 cap of ¥{cap:,} for a ¥{transaction_yen:,} "
                            f"order (20% of the order, at least ¥{SOHU_FLOOR_YEN}); transaction value = the rule's "
                            "minimum order")


def kensho(setting: str, what: str, prize_yen: int, transaction_yen: int, total_yen: int = 0,
           expected_sales_yen: int = 0) -> Finding | None:
    """A finding when a prize won by chance is over the 一般懸賞 caps: the prize against 20 times the transaction
    value (at most ¥100,000), and `total_yen` (all its prizes) against 2% of `expected_sales_yen` when given."""
    cap = kensho_cap(transaction_yen)
    if prize_yen > cap:
        return Finding(setting, f"{what} is worth ¥{prize_yen:,}, over the 一般懸賞 cap of ¥{cap:,} for a "
                                f"¥{transaction_yen:,} order (20 times the order, at most ¥{KENSHO_MAX_YEN:,})")
    total_cap = kensho_total_cap(expected_sales_yen)
    if expected_sales_yen and total_yen > total_cap:
        return Finding(setting, f"{what}: all prizes together are worth ¥{total_yen:,}, over 2% of the expected "
                                f"sales (¥{total_cap:,} of ¥{expected_sales_yen:,}, [legal] expected_sales_yen)")
    return None


def _strongest(rules: Rules, rule: str) -> tuple[float, int]:
    """The largest (multiplier, bonus) any one moment's campaigns give `rule`: checked at every campaign's start,
    where the set in effect changes (and with none, 1 and 0)."""
    moments: list[datetime] = [c.starts for c in rules.campaigns if rule in c.rules]
    effects = [engine.campaign_effect(rules.campaigns, rule, at) for at in moments]
    return max(effects, default=(1.0, 0), key=lambda e: (e[0], e[1]))


def _points(rules: Rules, rule: str, base: int, tiered: bool = False) -> int:
    """`base` points of `rule` at their highest: the strongest campaign, and the top tier's multiplier when the
    tier multiplies that rule (engine.TIER_MULTIPLIED)."""
    multiplier, bonus = _strongest(rules, rule)
    if tiered:
        multiplier *= max(t.multiplier for t in rules.tiers)
    return math.floor(base * multiplier + 1e-9) + (bonus if base > 0 else 0)


def check(rules: Rules, data: dict[str, Any]) -> list[Finding]:
    """Every purchase-dependent reward the rules give, against the 総付景品 cap (an offer experiment's arms too). The
    rules hold no reward won by chance today: `kensho` checks one."""
    found: list[Finding | None] = []
    if rules.referral_trigger == "first_purchase":  # on joining, no purchase: not a premium of a transaction
        order = rules.referral_minimum_order
        referrer = _points(rules, "referral.referrer", rules.referrer_points)
        friend = _points(rules, "referral.friend", rules.friend_points)
        # 相手に譲る: a referrer may give their share to the friend, who then gets both
        friend_most = friend + referrer if rules.allow_gift else friend
        found.append(sohu("referral.friend_points", "the friend's referral reward"
                          + (" (with the referrer's share given to them: allow_gift)" if rules.allow_gift else ""),
                          rules.yen(friend_most), order))
        # The referrer's reward and the milestone bonuses are not checked: a thank-you to whoever introduced a buyer
        # is not given "in connection with a transaction" as long as referrers are not limited to buyers (CAA 景品Q&A
        # Q35, https://www.caa.go.jp/policies/policy/representation/fair_labeling/faq/premium/other), and any
        # member may refer here. Only what the buying friend gets is a premium of their purchase.
        found.extend(_arms(rules, order))
    first = rules.earn.get("first_purchase")
    if first and first.points:
        found.append(sohu("earn.first_purchase.points", "the first-purchase bonus",
                          rules.yen(_points(rules, "first_purchase", first.points, tiered=True)), 0))
    found.extend(_purchase_points(rules))
    return [f for f in found if f is not None]


def _arms(rules: Rules, order: int) -> list[Finding | None]:
    """An offer experiment's arms pay their own amounts to every qualifying buyer of their arm: each is checked as
    [referral]'s are (総付景品, the stricter cap; which arm a referrer gets is not a prize drawn per purchase)."""
    found: list[Finding | None] = []
    for i, experiment in enumerate(rules.experiments):
        for j, arm in enumerate(experiment.arms):
            referrer = _points(rules, "referral.referrer",
                               rules.referrer_points if arm.referrer_points is None else arm.referrer_points)
            friend = _points(rules, "referral.friend",
                             rules.friend_points if arm.friend_points is None else arm.friend_points)
            where = f"experiments[{i}].arms[{j}]"
            if arm.friend_points is not None or (rules.allow_gift and arm.referrer_points is not None):
                found.append(sohu(f"{where}.friend_points" if arm.friend_points is not None
                                  else f"{where}.referrer_points",
                                  f"the friend's referral reward in arm {arm.id!r} of experiment {experiment.id!r}"
                                  + (" (with the referrer's share given)" if rules.allow_gift else ""),
                                  rules.yen(friend + referrer if rules.allow_gift else friend), order))
    return found


def _purchase_points(rules: Rules) -> list[Finding | None]:
    """Purchase points grow with the order: checked on the smallest order that earns one (where a campaign's fixed
    bonus weighs most) and as a share of a large order (where the ¥200 floor no longer helps)."""
    smallest = max(rules.purchase_minimum_order, rules.yen_per_point)
    at_smallest = _points(rules, "purchase", rules.purchase_points(smallest), tiered=True)
    large = 1_000_000
    at_large = _points(rules, "purchase", rules.purchase_points(large), tiered=True)
    return [sohu("earn.purchase.yen_per_point", "the purchase points of the smallest order that earns one",
                 rules.yen(at_smallest), smallest),
            sohu("earn.purchase.yen_per_point",
                 f"the purchase points of a ¥{large:,} order ({rules.yen(at_large) / large:.0%} of it)",
                 rules.yen(at_large), large)]

