"""What an earning is worth: base points, tier multiplier, campaigns, expiry and hold. Pure functions."""
from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rewards.rules import Campaign, Caps, Rules, Tier

# Rules whose points the member's tier multiplies (sign-up and referral amounts are promised as stated).
TIER_MULTIPLIED = ("purchase", "first_purchase", "birthday")


@dataclass(frozen=True)
class Award:
    op: str
    rule: str
    kind: str
    amount: int
    at_ms: int
    expires_ms: int = 0  # 0: never
    hold_until_ms: int = 0  # 0: spendable at once
    caps: Caps = Caps()
    note: str = ""

    def spec(self, rules: Rules) -> dict[str, Any]:
        """What the ledger's Lua `earn` takes."""
        local = shop_time(rules, self.at_ms)
        return {"op": self.op, "amount": self.amount, "kind": self.kind, "rule": self.rule, "at": self.at_ms,
                "note": self.note, "expires": self.expires_ms, "hold_until": self.hold_until_ms,
                "month": local.strftime("%Y-%m"), "day": local.strftime("%Y-%m-%d"),
                "caps": {"day": self.caps.per_day, "month": self.caps.per_month, "life": self.caps.lifetime}}


def shop_time(rules: Rules, at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, rules.timezone)


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def campaigns_in_effect(campaigns: tuple[Campaign, ...], rule: str, at: datetime) -> list[Campaign]:
    """The campaigns that boost `rule` at `at`: every stackable one running, and of the others only the
    strongest."""
    active = [c for c in campaigns if c.active(at, rule)]
    alone = [c for c in active if not c.stackable]
    best = [max(alone, key=lambda c: (c.multiplier, c.bonus))] if alone else []
    return [c for c in active if c.stackable] + best


def campaign_effect(campaigns: tuple[Campaign, ...], rule: str, at: datetime) -> tuple[float, int]:
    """(multiplier, bonus) of the campaigns in effect for `rule` at `at`: multipliers multiply, bonuses add."""
    multiplier, bonus = 1.0, 0
    for c in campaigns_in_effect(campaigns, rule, at):
        multiplier, bonus = multiplier * c.multiplier, bonus + c.bonus
    return multiplier, bonus


def expires_ms(rules: Rules, at: datetime) -> int:
    """When points earned at `at` expire on their own (0: they do not; inactivity expiry is per member)."""
    if rules.expiry != "earned":
        return 0
    return int(add_months(at, rules.expire_after_months).timestamp() * 1000)


def award(rules: Rules, rule: str, base: int, at_ms: int, op: str, kind: str, *, tier: Tier | None = None,
          hold_days: int = 0, caps: Caps | None = None, note: str = "") -> Award:
    at = shop_time(rules, at_ms)
    multiplier, bonus = campaign_effect(rules.campaigns, rule, at)
    if tier is not None and (rule in TIER_MULTIPLIED or rule.startswith("events.")):
        multiplier *= tier.multiplier
    amount = math.floor(base * multiplier + 1e-9) + (bonus if base > 0 else 0)
    expires = expires_ms(rules, at)
    hold = int((at + timedelta(days=hold_days)).timestamp() * 1000) if hold_days else 0
    return Award(op=op, rule=rule, kind=kind, amount=amount, at_ms=at_ms, expires_ms=expires, hold_until_ms=hold,
                 caps=caps or Caps(), note=note)
