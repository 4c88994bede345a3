"""Who a broadcast reaches: segments as data, validated once, then evaluated member by member. Pure.

A segment is JSON. Absent, `"everyone"` (or `"all"`) or `{"everyone": true}`: every member who has not blocked the
account. Otherwise one of these objects, each with exactly one key, nested freely (depth ≤ 8, ≤ 100 nodes):

    {"all": [segment, ...]}            every one matches        {"any": [segment, ...]}  at least one matches
    {"not": segment}                   the opposite
    {"tier": ["gold", ...]}            tier is one of these (names from the rules file)
    {"points_at_least": N}             spendable points ≥ N      {"points_at_most": N}   spendable points ≤ N
    {"never_referred": true}           has invited nobody (no pending, completed or voided referral)
    {"referred_at_least": N}           completed referrals ≥ N
    {"has_pending_referrals": true}    at least one referral waiting for the friend's first purchase
    {"milestone_within_one": true}     one more completed referral reaches a milestone of the rules
    {"points_expiring_within_days": N} some spendable points expire within N days (0 ≤ N ≤ 366)
    {"birthday_this_month": true}      birthday (MM-DD) falls in the current month, in the shop's time zone
    {"language": ["en", ...]}          LINE language (base tag); members whose language we never learnt are "ja"
    {"joined_before": ISO 8601}        first seen by the bot before that time; also joined_after,
    {"active_before": ISO 8601}        last sighting or points movement before it; also active_after
    {"user_ids": ["U…", ...]}          exactly these members (≤ 10,000)

Blocked members are never matched, whatever the segment says: LINE would not deliver to them anyway.
`false` for a boolean leaf is refused (say {"not": {...}} instead), so a segment reads one way only.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards import engine, times
from rewards.errors import DomainError
from rewards.rules import Rules

MAX_DEPTH = 8
MAX_NODES = 100
MAX_USER_IDS = 10_000
USER_ID = re.compile(r"^U[0-9a-f]{32}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
DEFAULT_LANGUAGE = "ja"


class SegmentError(DomainError):
    """A segment that cannot be evaluated; `where` points into the JSON (e.g. `segment.all[1].tier`)."""

    def __init__(self, where: str, message: str):
        super().__init__("INVALID_SEGMENT", f"{where}: {message}")
        self.where = where
        self.message = message  # without `where`, which str() of the error starts with


@dataclass(frozen=True)
class MemberFacts:
    """What a segment may look at, for one member (read by Program.member_facts)."""

    user_id: str
    blocked: bool
    tier: str
    points: int
    referrals_invited: int
    referrals_pending: int
    referrals_completed: int
    lang: str | None
    birthday: str | None  # MM-DD
    joined_at_ms: int
    last_active_ms: int
    next_expiry_ms: int | None  # the soonest expiry of spendable points still left


Predicate = Callable[[MemberFacts], bool]


@dataclass(frozen=True)
class Segment:
    """A validated segment: `spec` is the normalised JSON (stored with a job), `matches` decides."""

    spec: Any
    matches: Predicate
    everyone: bool


def _whole(where: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SegmentError(where, f"must be a whole number from {low} to {high}")
    return value


def _true(where: str, value: Any) -> None:
    if value is not True:
        raise SegmentError(where, "must be true (to ask for the opposite, wrap it in {\"not\": ...})")


def _strings(where: str, value: Any, limit: int) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= limit or not all(isinstance(v, str) for v in value):
        raise SegmentError(where, f"must be a list of 1 to {limit} strings")
    return list(value)


def parse(raw: Any, rules: Rules, now_ms: int) -> Segment:
    """Validate a segment and compile it; raises SegmentError naming the bad part."""
    nodes = [0]
    milestones = {m.count for m in rules.milestones}
    tiers = {t.name for t in rules.tiers}
    month = engine.shop_time(rules, now_ms).month

    def when(where: str, value: Any) -> int:
        # a date or a time without offset is the shop's local time; any date is fine for a comparison
        try:
            return times.epoch_ms(value, rules.timezone)
        except times.TimeRefused as exc:
            raise SegmentError(where, str(exc)) from exc

    def compile_(node: Any, where: str, depth: int) -> Predicate:
        nodes[0] += 1
        if nodes[0] > MAX_NODES:
            raise SegmentError("segment", f"has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise SegmentError(where, f"nests deeper than {MAX_DEPTH}")
        if node == "everyone":
            return lambda m: True
        if not isinstance(node, dict) or len(node) != 1:
            raise SegmentError(where, "must be an object with exactly one key (all, any, not, or a condition)")
        (key, value), = node.items()
        at = f"{where}.{key}"
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise SegmentError(at, "must be a non-empty list of segments")
            parts = [compile_(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(value)]
            return (lambda m: all(p(m) for p in parts)) if key == "all" else (lambda m: any(p(m) for p in parts))
        if key == "not":
            inner = compile_(value, at, depth + 1)
            return lambda m: not inner(m)
        if key == "everyone":
            _true(at, value)
            return lambda m: True
        if key == "tier":
            names = set(_strings(at, value, 20))
            unknown = sorted(names - tiers)
            if unknown:
                raise SegmentError(at, f"unknown tier {unknown[0]!r}; the rules name {sorted(tiers)}")
            return lambda m: m.tier in names
        if key in ("points_at_least", "points_at_most"):
            n = _whole(at, value, -10_000_000, 100_000_000)
            return (lambda m: m.points >= n) if key == "points_at_least" else (lambda m: m.points <= n)
        if key == "never_referred":
            _true(at, value)
            return lambda m: m.referrals_invited == 0
        if key == "referred_at_least":
            n = _whole(at, value, 0, 1_000_000)
            return lambda m: m.referrals_completed >= n
        if key == "has_pending_referrals":
            _true(at, value)
            return lambda m: m.referrals_pending > 0
        if key == "milestone_within_one":
            _true(at, value)
            return lambda m: m.referrals_completed + 1 in milestones
        if key == "points_expiring_within_days":
            horizon = now_ms + _whole(at, value, 0, 366) * 86_400_000
            return lambda m: m.next_expiry_ms is not None and m.points > 0 and m.next_expiry_ms <= horizon
        if key == "birthday_this_month":
            _true(at, value)
            return lambda m: m.birthday is not None and int(m.birthday[:2]) == month
        if key == "language":
            langs = {v.lower() for v in _strings(at, value, 20)}
            bad = sorted(v for v in langs if not LANGUAGE.fullmatch(v))
            if bad:
                raise SegmentError(at, f"{bad[0]!r} is not a language code like \"ja\" or \"en\"")
            return lambda m: (m.lang or DEFAULT_LANGUAGE).split("-")[0].lower() in langs
        if key in ("joined_before", "joined_after", "active_before", "active_after"):
            t = when(at, value)
            if key == "joined_before":
                return lambda m: m.joined_at_ms < t
            if key == "joined_after":
                return lambda m: m.joined_at_ms >= t
            if key == "active_before":
                return lambda m: m.last_active_ms < t
            return lambda m: m.last_active_ms >= t
        if key == "user_ids":
            ids = _strings(at, value, MAX_USER_IDS)
            bad = [u for u in ids if not USER_ID.fullmatch(u)]
            if bad:
                raise SegmentError(at, f"{bad[0]!r} is not a LINE user id (U and 32 hex digits)")
            wanted = set(ids)
            return lambda m: m.user_id in wanted
        raise SegmentError(at, "is not a known condition")

    if raw is None or raw in ("everyone", "all") or raw == {"everyone": True}:
        return Segment(spec="everyone", matches=lambda m: not m.blocked, everyone=True)
    predicate = compile_(raw, "segment", 1)
    return Segment(spec=raw, matches=lambda m: not m.blocked and predicate(m), everyone=False)


def user_ids_only(raw: Any) -> list[str] | None:
    """The ids of a plain {"user_ids": [...]} segment (no need to scan every member), else None."""
    if isinstance(raw, dict) and list(raw) == ["user_ids"] and isinstance(raw["user_ids"], list):
        return list(dict.fromkeys(raw["user_ids"]))
    return None


# ---- named segments, for people who pick rather than write JSON (the staff dashboard) ----------------------
# a name -> its segment; "tier:<name>" and "language:<code>" are named from the rules and the locales
PRESETS: dict[str, Any] = {
    "never_referred": {"never_referred": True},
    "pending": {"has_pending_referrals": True},
    "milestone": {"milestone_within_one": True},
    "expiring": {"points_expiring_within_days": 14},
    "birthday": {"birthday_this_month": True},
}


def preset(name: str) -> Any:
    """The segment a picked name stands for; SegmentError for a name that is not one."""
    if name in PRESETS:
        return PRESETS[name]
    kind, _, value = name.partition(":")
    if kind == "tier" and value:
        return {"tier": [value]}
    if kind == "language" and value:
        return {"language": [value]}
    raise SegmentError("segment", f"{name!r} is not a named segment")


def combine(names: list[str], how: str) -> Any:
    """Picked names as one segment: every one of them matches ("all") or at least one ("any")."""
    if how not in ("all", "any"):
        raise SegmentError("segment", "combine with \"all\" or \"any\"")
    parts = [preset(n) for n in dict.fromkeys(names)]
    if not parts:
        raise SegmentError("segment", "pick at least one segment")
    return parts[0] if len(parts) == 1 else {how: parts}
