"""The rules file (TOML) a shop edits: read and checked once at start-up."""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RulesError(Exception):
    """The rules file is unreadable or breaks a rule; the message says where."""


@dataclass(frozen=True)
class Tier:
    name: str
    min_lifetime_points: int


@dataclass(frozen=True)
class Rules:
    signup_points: int
    yen_per_point: int
    rounding: str
    purchase_minimum_order: int
    referrer_points: int
    friend_points: int
    referral_minimum_order: int
    referral_window_days: int
    guess_max_failures: int
    guess_per_minutes: int
    tiers: tuple[Tier, ...]

    def purchase_points(self, amount_yen: int) -> int:
        if amount_yen < self.purchase_minimum_order:
            return 0
        exact = amount_yen / self.yen_per_point
        if self.rounding == "ceil":
            return math.ceil(exact)
        if self.rounding == "round":
            return math.floor(exact + 0.5)  # half up, as shops expect (Python's round() is half-even)
        return math.floor(exact)

    def tier_for(self, lifetime_points: int) -> Tier:
        reached = [t for t in self.tiers if lifetime_points >= t.min_lifetime_points]
        return reached[-1] if reached else self.tiers[0]

    @property
    def referral_window_ms(self) -> int:
        return self.referral_window_days * 86_400_000


def _int(table: dict[str, Any], section: str, key: str, *, minimum: int = 0) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RulesError(f"[{section}] {key} must be a whole number of at least {minimum}, got {value!r}")
    return value


def load_rules(path: Path) -> Rules:
    """Read and check the rules file; any mistake is a RulesError with one line to show the shop."""
    try:
        return _load_rules(path)
    except UnicodeDecodeError as exc:
        raise RulesError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    except (AttributeError, TypeError, IndexError, KeyError) as exc:
        # a value of the wrong shape where the checks above did not look: a table where a list belongs…
        raise RulesError(f"{path}: a section or list has the wrong shape ({exc})") from exc


def _load_rules(path: Path) -> Rules:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: {exc}") from exc  # tomllib names the line and column
    try:
        sections = {name: data[name] for name in ("signup", "purchase", "referral", "code_guessing")}
    except KeyError as exc:
        raise RulesError(f"{path}: the [{exc.args[0]}] section is missing") from exc
    purchase, referral = sections["purchase"], sections["referral"]
    rounding = purchase.get("rounding", "floor")
    if rounding not in ("floor", "round", "ceil"):
        raise RulesError(f"{path}: [purchase] rounding must be floor, round or ceil, got {rounding!r}")
    if referral.get("trigger", "first_purchase") != "first_purchase":
        raise RulesError(f"{path}: [referral] trigger: only first_purchase is supported")
    tiers = tuple(Tier(str(t.get("name", "")), _int(t, "tiers", "min_lifetime_points"))
                  for t in data.get("tiers", [{"name": "member", "min_lifetime_points": 0}]))
    if not tiers:
        raise RulesError(f"{path}: [[tiers]] is empty: list at least one tier")
    if any(not t.name for t in tiers) or list(tiers) != sorted(tiers, key=lambda t: t.min_lifetime_points):
        raise RulesError(f"{path}: every [[tiers]] needs a name, listed from the lowest threshold up")
    return Rules(
        signup_points=_int(sections["signup"], "signup", "points"),
        yen_per_point=_int(purchase, "purchase", "yen_per_point", minimum=1),
        rounding=rounding,
        purchase_minimum_order=_int(purchase, "purchase", "minimum_order"),
        referrer_points=_int(referral, "referral", "referrer_points"),
        friend_points=_int(referral, "referral", "friend_points"),
        referral_minimum_order=_int(referral, "referral", "minimum_order"),
        referral_window_days=_int(referral, "referral", "window_days", minimum=1),
        guess_max_failures=_int(sections["code_guessing"], "code_guessing", "max_failures", minimum=1),
        guess_per_minutes=_int(sections["code_guessing"], "code_guessing", "per_minutes", minimum=1),
        tiers=tiers,
    )
