"""The rules file (TOML) a shop edits: read and checked once at start-up.

Every mistake is reported with the line it is on, so a shop can fix its own file.

Over 400 lines on purpose: it is one file's schema, section by section, and reads best as one table
of what a shop may write; split, a reader would hunt across modules for one setting.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rewards.errors import DomainError
from rewards.rings import RING_MODES
from rewards.rings import Settings as RingSettings


class RulesError(DomainError):
    """The rules file is unreadable or breaks a rule; the message says where."""

    def __init__(self, message: str):
        super().__init__("INVALID_RULES", message)


@dataclass(frozen=True)
class Caps:
    per_day: int = 0
    per_month: int = 0
    lifetime: int = 0


@dataclass(frozen=True)
class EarnRule:
    name: str  # signup, profile, birthday, first_purchase, events.<name>
    points: int
    caps: Caps = Caps()


@dataclass(frozen=True)
class Milestone:
    count: int
    points: int


@dataclass(frozen=True)
class Tier:
    name: str  # the stable id: stored on members, compared, used by segments and the admin API
    threshold: int
    multiplier: float = 1.0
    label: dict[str, str] = field(default_factory=dict)  # what people read, per language; empty: the name

    def label_in(self, lang: str) -> str:
        return self.label.get(lang) or self.label.get("ja") or self.name


@dataclass(frozen=True)
class Campaign:
    name: str
    starts: datetime
    ends: datetime
    rules: frozenset[str]
    multiplier: float = 1.0
    bonus: int = 0
    stackable: bool = False

    def active(self, at: datetime, rule: str) -> bool:
        return rule in self.rules and self.starts <= at < self.ends


@dataclass(frozen=True)
class Reward:
    id: str
    cost: int
    name: dict[str, str]
    description: dict[str, str]
    issue: str = "generated"  # generated | pool | manual | shopify_discount
    stock: int | None = None  # None: no limit
    per_member: int | None = None
    tier: str | None = None
    available_from: datetime | None = None
    available_until: datetime | None = None
    valid_days: int | None = None
    image: str | None = None
    # issue = "shopify_discount": the code made in the shop takes one of these off an order (the other is 0)
    yen_off: int = 0
    percent_off: int = 0
    minimum_order: int = 0  # yen; the order's subtotal must reach it (0: any order)


SHOPIFY_DISCOUNT = "shopify_discount"  # the issue of a reward claimed as a one-time code in the Shopify store
REWARD_ISSUES = ("generated", "pool", "manual", SHOPIFY_DISCOUNT)


@dataclass(frozen=True)
class FriendCoupon:
    """[referral.friend_coupon]: the coupon a referred friend gets when their referral becomes pending."""

    kind: str  # generated: we make the code | pool: codes the shop uploaded (to FRIEND_COUPON_POOL)
    yen_off: int  # one of yen_off / percent_off is set, the other 0
    percent_off: int
    minimum_order: int  # yen; 0: any order
    valid_days: int | None  # usable through the end of this many days after it is given; None: no end
    prefix: str  # generated codes start with it ("" for none)
    name: dict[str, str]  # what the friend reads, per language


# The reward id the friend coupon is filed under (a member's coupons, the code pool): a dot is never in a catalog
# reward's id, so the two cannot clash.
FRIEND_COUPON_POOL = "referral.friend_coupon"

@dataclass(frozen=True)
class Arm:
    """One arm of an [[experiments]] entry: a share of the referrers, and what their referrals pay instead of
    [referral]'s amounts (None: as [referral] says). rewards/experiments.py applies it."""

    id: str
    share: int  # percent of the referrers assigned to it (the arms' shares add up to 100; 0: no new ones)
    referrer_points: int | None = None
    friend_points: int | None = None
    coupon_set: bool = False  # True: friend_coupon below replaces [referral.friend_coupon] (None: no coupon)
    friend_coupon: FriendCoupon | None = None


@dataclass(frozen=True)
class Experiment:
    """[[experiments]]: an offer experiment, running from `starts` until `ends` (None: until ended)."""

    id: str
    starts: datetime
    ends: datetime | None
    arms: tuple[Arm, ...]
    name: str = ""

    def runs_at(self, at: datetime) -> bool:
        return self.starts <= at and (self.ends is None or at < self.ends)

    def arm(self, arm_id: str) -> Arm | None:
        return next((a for a in self.arms if a.id == arm_id), None)


NOTICE_KINDS = ("friend_joined", "referral_completed", "milestone", "tier_up", "points_expiring", "stock_back",
                "friend_points", "friend_coupon", "referral_accepted", "budget_alert")


@dataclass(frozen=True)
class Notifications:
    """Which push notices go out, and the quiet hours (minutes after midnight, shop time) they wait out."""

    enabled: frozenset[str] = frozenset(NOTICE_KINDS)
    quiet_start: int | None = 21 * 60  # None: no quiet hours
    quiet_end: int | None = 9 * 60
    ignore_quiet_hours: frozenset[str] = frozenset({"friend_joined", "referral_completed", "friend_points",
                                                    "referral_accepted"})

    def quiet_at(self, minute_of_day: int) -> bool:
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return False
        if self.quiet_start < self.quiet_end:
            return self.quiet_start <= minute_of_day < self.quiet_end
        return minute_of_day >= self.quiet_start or minute_of_day < self.quiet_end  # across midnight


@dataclass(frozen=True)
class Budget:
    """[budget]: monthly caps in yen (shop-time months); 0: no cap. rewards/budget.py keeps them."""

    referral_monthly_yen: int = 0  # the referral rewards a month may pay (friend, referrer, milestones)
    campaign_monthly_yen: int = 0  # the points campaigns add on top of purchase earnings in a month


PREMIUM_MODES = ("warn", "strict", "off")


@dataclass(frozen=True)
class Legal:
    """[legal]: the premiums-law (景表法) check of rewards/premiums.py when the rules load."""

    premiums: str = "warn"  # warn: log and keep the findings | strict: refuse the file | off: no check
    expected_sales_yen: int = 0  # a chance reward's expected sales, for its 2% total cap (0: not checked)


PROMPT_KINDS = ("refer_after_purchase", "refer_after_event", "friend_reminder", "reward_in_reach")


@dataclass(frozen=True)
class Prompts:
    """[prompts]: pushes that ask at the right moment (invite after a purchase or a marked event, remind a
    referred friend who has not bought, a reward now in reach), each switchable, all within one weekly cap."""

    enabled: frozenset[str] = frozenset()  # none unless the rules file switches them on
    weekly_cap: int = 1  # prompts per member per ISO week (Monday to Sunday, shop time), all kinds together
    events: frozenset[str] = frozenset()  # custom events (POST /api/v1/events names) that invite to refer
    event_min_value: dict[str, int] = field(default_factory=dict)  # event -> the least "value" that invites
    reminder_days: int = 3  # a referred friend with no order this many days after joining gets the reminder

    def invites_after(self, name: str, value: int | None) -> bool:
        """A custom event the rules mark (a review), with its value at least the rules' minimum when they set
        one (a 5★ review: min 5); an event without a value never meets a minimum."""
        if "refer_after_event" not in self.enabled or name not in self.events:
            return False
        least = self.event_min_value.get(name)
        return least is None or (value is not None and value >= least)


@dataclass(frozen=True)
class Rules:
    timezone: ZoneInfo
    expiry: str  # earned | inactivity | never
    expire_after_months: int
    warning_days: int
    block_claims_in_debt: bool
    earn: dict[str, EarnRule]
    yen_per_point: int
    rounding: str
    purchase_minimum_order: int
    purchase_caps: Caps
    referrer_points: int
    friend_points: int
    referral_trigger: str  # first_purchase | join
    referral_minimum_order: int
    referral_hold_days: int
    referral_window_days: int
    referral_monthly_cap: int
    allow_gift: bool
    milestones: tuple[Milestone, ...]
    guess_max_failures: int
    guess_per_minutes: int
    pace_max_events: int  # [chat_pace]: events one person may send within pace_per_seconds before answers wait
    pace_per_seconds: int
    tier_basis: str  # points | yen
    tier_window: str  # lifetime | rolling_12_months
    tier_downgrade: str  # never | window
    tiers: tuple[Tier, ...]
    campaigns: tuple[Campaign, ...] = ()
    rewards: tuple[Reward, ...] = field(default_factory=tuple)
    notifications: Notifications = Notifications()
    friend_coupon: FriendCoupon | None = None  # None: no welcome coupon
    prompts: Prompts = Prompts()
    # [account_link]: an order reported for a shop customer not yet linked to a LINE user is kept this many days
    # after it happened; linking within them credits it to the member (rewards/links.py)
    unattributed_days: int = 30
    # [points] point_value_yen: what one point costs the shop in yen, so every figure that counts points also
    # shows yen (stats, the dashboard, what-if, experiments, budgets, the premiums-law check)
    point_value_yen: float = 1.0
    budget: Budget = Budget()  # [budget]: monthly yen caps (rewards/budget.py)
    legal: Legal = Legal()  # [legal]: the premiums-law check's mode
    # what the premiums-law check found over a cap ([legal] premiums = "warn"): one line each, logged at load
    warnings: tuple[str, ...] = ()
    # [broadcasts] extra_message_yen: what LINE charges for a message beyond the plan's free monthly quota (the
    # dashboard's broadcast estimate); 0 for a plan that sells none (a send past the quota pauses)
    extra_message_yen: float = 3.0
    # [rings]: referral-ring detection (rewards/rings.py, rewards/ring_watch.py); off unless the file turns it on
    rings: RingSettings = RingSettings()
    experiments: tuple[Experiment, ...] = ()  # [[experiments]]: offer experiments (rewards/experiments.py)
    # [dashboard] staff_adjust_limit: the most points a "staff" account may add or take away in one adjustment
    # on the staff dashboard (owners have no limit; the admin API is the machines' and has none)
    staff_adjust_limit: int = 1000

    def yen(self, points: int) -> int:
        """Points as the shop's cost in yen, rounded half up to a whole yen."""
        return math.floor(points * self.point_value_yen + 0.5)

    @property
    def signup_points(self) -> int:
        rule = self.earn.get("signup")
        return rule.points if rule else 0

    def purchase_points(self, amount_yen: int) -> int:
        if amount_yen < self.purchase_minimum_order:
            return 0
        exact = amount_yen / self.yen_per_point
        if self.rounding == "ceil":
            return math.ceil(exact)
        if self.rounding == "round":
            return math.floor(exact + 0.5)  # half up, as shops expect (Python's round() is half-even)
        return math.floor(exact)

    def tier_label(self, name: str, lang: str) -> str:
        """A tier as people read it in `lang`; a name the rules no longer know (renamed since) shows as is."""
        tier = next((t for t in self.tiers if t.name == name), None)
        return tier.label_in(lang) if tier else name

    def tier_for(self, measure: int) -> Tier:
        reached = [t for t in self.tiers if measure >= t.threshold]
        return reached[-1] if reached else self.tiers[0]

    @property
    def unattributed_ms(self) -> int:
        return self.unattributed_days * 86_400_000

    @property
    def referral_window_ms(self) -> int:
        return self.referral_window_days * 86_400_000

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)


# ---- reading the file ------------------------------------------------------------------
_TABLE = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-\"]+)\s*=")


def _line_index(text: str) -> dict[str, int]:
    """Where each setting sits: "referral.milestones[1].points" -> its line number (1-based)."""
    lines: dict[str, int] = {}
    table = ""
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            name = header.group(2).replace('"', "")
            if header.group(1):  # [[array.of.tables]]
                counts[name] = counts.get(name, -1) + 1
                table = f"{name}[{counts[name]}]"
            else:
                table = name
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            path = f"{table}.{key.group(1)}" if table else key.group(1)
            lines.setdefault(path, number)
    return lines


class _Reader:
    """Reads values out of the parsed file and raises RulesError naming the line of a bad one."""

    def __init__(self, path: Path, lines: dict[str, int]):
        self.path = path
        self.lines = lines

    def fail(self, where: str, message: str) -> RulesError:
        parts = where.split(".")
        line = None
        while parts and line is None:  # the setting's own line, else its table's
            line = self.lines.get(".".join(parts))
            parts.pop()
        at = f"line {line}" if line else "the file"
        return RulesError(f"{self.path}, {at} ({where}): {message}")

    def table(self, data: dict[str, Any], where: str, name: str, required: bool = False) -> dict[str, Any]:
        value = data.get(name)
        if value is None:
            if required:
                raise self.fail(where or name, f"the [{f'{where}.' if where else ''}{name}] section is missing")
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"{where}.{name}".strip("."), "must be a table")
        return value

    def whole(self, table: dict[str, Any], where: str, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = table.get(key, default)
        if value is None:
            raise self.fail(f"{where}.{key}", "is required")
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"{where}.{key}", f"must be a whole number of at least {minimum}, not {value!r}")
        return value

    def number(self, table: dict[str, Any], where: str, key: str, default: float) -> float:
        value = table.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise self.fail(f"{where}.{key}", f"must be a number above 0, not {value!r}")
        return float(value)

    def choice(self, table: dict[str, Any], where: str, key: str, choices: tuple[str, ...]) -> str:
        value = table.get(key, choices[0])
        if value not in choices:
            raise self.fail(f"{where}.{key}", f"must be one of {', '.join(choices)}, not {value!r}")
        return str(value)

    def flag(self, table: dict[str, Any], where: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"must be true or false, not {value!r}")
        return value

    def caps(self, table: dict[str, Any], where: str) -> Caps:
        caps = table.get("caps", {})
        if not isinstance(caps, dict) or set(caps) - {"per_day", "per_month", "lifetime"}:
            raise self.fail(f"{where}.caps", "caps takes per_day, per_month and lifetime")
        return Caps(*(self.whole(caps, f"{where}.caps", k, 0) for k in ("per_day", "per_month", "lifetime")))

    def time(self, table: dict[str, Any], where: str, key: str, zone: ZoneInfo, required: bool = True
             ) -> datetime | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, datetime):
            raise self.fail(f"{where}.{key}", "must be a date-time such as 2027-03-25T00:00:00+09:00")
        return value if value.tzinfo else value.replace(tzinfo=zone)

    def texts(self, table: dict[str, Any], where: str, key: str) -> dict[str, str]:
        value = table.get(key)
        if not isinstance(value, dict) or "ja" not in value or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(f"{where}.{key}", 'needs a text per language, at least ja: { ja = "…", en = "…" }')
        return dict(value)


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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: {exc}") from exc  # tomllib names the line and column
    r = _Reader(path, _line_index(text))

    program = r.table(data, "", "program")
    try:
        zone = ZoneInfo(program.get("timezone", "Asia/Tokyo"))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise r.fail("program.timezone", f"unknown time zone {program.get('timezone')!r}") from exc

    points = r.table(data, "", "points")
    earn_table = r.table(data, "", "earn", required=True)
    earn: dict[str, EarnRule] = {}
    for name in ("signup", "profile", "birthday", "first_purchase"):
        if name in earn_table:
            t = r.table(earn_table, "earn", name)
            earn[name] = EarnRule(name, r.whole(t, f"earn.{name}", "points"), r.caps(t, f"earn.{name}"))
    for name, t in r.table(earn_table, "earn", "events").items():
        if not isinstance(t, dict) or not re.fullmatch(r"[a-z0-9_\-]{1,40}", name):
            raise r.fail(f"earn.events.{name}", "an event is a table named with a-z, 0-9, _ or -")
        earn[f"events.{name}"] = EarnRule(f"events.{name}", r.whole(t, f"earn.events.{name}", "points"),
                                          r.caps(t, f"earn.events.{name}"))
    purchase = r.table(earn_table, "earn", "purchase", required=True)

    referral = r.table(data, "", "referral", required=True)
    milestones = []
    for i, m in enumerate(referral.get("milestones", [])):
        where = f"referral.milestones[{i}]"
        milestones.append(Milestone(r.whole(m, where, "count", minimum=1), r.whole(m, where, "points")))
    if len({m.count for m in milestones}) != len(milestones):
        raise r.fail("referral.milestones", "two milestones have the same count")

    guessing = r.table(data, "", "code_guessing")
    pace = r.table(data, "", "chat_pace")
    account_link = r.table(data, "", "account_link")
    dashboard = r.table(data, "", "dashboard")
    tiers_table = r.table(data, "", "tiers")
    levels = tiers_table.get("levels") or [{"name": "member", "threshold": 0}]
    tiers = []
    for i, t in enumerate(levels):
        where = f"tiers.levels[{i}]"
        if not isinstance(t.get("name"), str) or not t["name"]:
            raise r.fail(where, "every tier needs a name")
        tiers.append(Tier(t["name"], r.whole(t, where, "threshold"), r.number(t, where, "multiplier", 1.0),
                          label=r.texts(t, where, "label") if "label" in t else {}))
    if [t.threshold for t in tiers] != sorted(t.threshold for t in tiers) or tiers[0].threshold != 0:
        raise r.fail("tiers.levels[0]", "list tiers from the lowest up; the first starts at threshold 0")
    tier_names = {t.name for t in tiers}

    known_rules = {"signup", "profile", "birthday", "purchase", "first_purchase", "referral.referrer",
                   "referral.friend", *(n for n in earn if n.startswith("events."))}
    campaigns = []
    for i, c in enumerate(data.get("campaigns", [])):
        where = f"campaigns[{i}]"
        rules = c.get("rules")
        if not isinstance(rules, list) or not rules or set(rules) - known_rules:
            raise r.fail(f"{where}.rules", f"name rules from: {', '.join(sorted(known_rules))}")
        starts, ends = r.time(c, where, "starts", zone), r.time(c, where, "ends", zone)
        assert starts and ends
        if ends <= starts:
            raise r.fail(f"{where}.ends", "a campaign must end after it starts")
        campaigns.append(Campaign(str(c.get("name", f"campaign {i + 1}")), starts, ends, frozenset(rules),
                                  r.number(c, where, "multiplier", 1.0), r.whole(c, where, "bonus", 0),
                                  r.flag(c, where, "stackable", False)))

    rewards: list[Reward] = []
    for i, w in enumerate(data.get("rewards", [])):
        where = f"rewards[{i}]"
        reward_id = w.get("id")
        if not isinstance(reward_id, str) or not re.fullmatch(r"[a-z0-9_\-]{1,32}", reward_id):
            raise r.fail(f"{where}.id", "every reward needs an id of 1-32 characters a-z, 0-9, _ or -")
        if any(other.id == reward_id for other in rewards):
            raise r.fail(f"{where}.id", f"another reward already has the id {reward_id!r}")
        tier = w.get("tier")
        if tier is not None and tier not in tier_names:
            raise r.fail(f"{where}.tier", f"no tier named {tier!r}")
        issue = r.choice(w, where, "issue", REWARD_ISSUES)
        rewards.append(Reward(
            id=reward_id, cost=r.whole(w, where, "cost", minimum=1), name=r.texts(w, where, "name"),
            description=r.texts(w, where, "description") if "description" in w else {"ja": ""},
            issue=issue, **_shop_discount(r, w, where, issue),
            stock=r.whole(w, where, "stock") if "stock" in w else None,
            per_member=r.whole(w, where, "per_member", minimum=1) if "per_member" in w else None,
            tier=tier, available_from=r.time(w, where, "available_from", zone, required=False),
            available_until=r.time(w, where, "available_until", zone, required=False),
            valid_days=r.whole(w, where, "valid_days", minimum=1) if "valid_days" in w else None,
            image=w.get("image")))

    notifications = _notifications(r, r.table(data, "", "notifications"))
    friend_coupon = _friend_coupon(r, r.table(referral, "referral", "friend_coupon"))
    prompts = _prompts(r, r.table(data, "", "prompts"), {n.removeprefix("events.") for n in earn
                                                          if n.startswith("events.")})

    rules = Rules(
        timezone=zone,
        expiry=r.choice(points, "points", "expiry", ("never", "earned", "inactivity")),
        expire_after_months=r.whole(points, "points", "expire_after_months", 12, minimum=1),
        warning_days=r.whole(points, "points", "warning_days", 0),
        block_claims_in_debt=r.flag(points, "points", "block_claims_in_debt", True),
        point_value_yen=_point_value(r, points),
        earn=earn,
        yen_per_point=r.whole(purchase, "earn.purchase", "yen_per_point", minimum=1),
        rounding=r.choice(purchase, "earn.purchase", "rounding", ("floor", "round", "ceil")),
        purchase_minimum_order=r.whole(purchase, "earn.purchase", "minimum_order", 0),
        purchase_caps=r.caps(purchase, "earn.purchase"),
        referrer_points=r.whole(referral, "referral", "referrer_points"),
        friend_points=r.whole(referral, "referral", "friend_points"),
        referral_trigger=r.choice(referral, "referral", "trigger", ("first_purchase", "join")),
        referral_minimum_order=r.whole(referral, "referral", "minimum_order", 0),
        referral_hold_days=r.whole(referral, "referral", "hold_days", 0),
        referral_window_days=r.whole(referral, "referral", "window_days", 7, minimum=1),
        referral_monthly_cap=r.whole(referral, "referral", "monthly_cap", 0),
        allow_gift=r.flag(referral, "referral", "allow_gift", False),
        milestones=tuple(sorted(milestones, key=lambda m: m.count)),
        guess_max_failures=r.whole(guessing, "code_guessing", "max_failures", 5, minimum=1),
        guess_per_minutes=r.whole(guessing, "code_guessing", "per_minutes", 60, minimum=1),
        pace_max_events=r.whole(pace, "chat_pace", "max_events", 20, minimum=1),
        pace_per_seconds=r.whole(pace, "chat_pace", "per_seconds", 60, minimum=1),
        tier_basis=r.choice(tiers_table, "tiers", "basis", ("points", "yen")),
        tier_window=r.choice(tiers_table, "tiers", "window", ("lifetime", "rolling_12_months")),
        tier_downgrade=r.choice(tiers_table, "tiers", "downgrade", ("never", "window")),
        tiers=tuple(tiers), campaigns=tuple(campaigns), rewards=tuple(rewards), notifications=notifications,
        friend_coupon=friend_coupon, prompts=prompts,
        unattributed_days=r.whole(account_link, "account_link", "unattributed_days", 30, minimum=1),
        budget=_budget(r, r.table(data, "", "budget")), legal=_legal(r, r.table(data, "", "legal")),
        extra_message_yen=_extra_message_yen(r, r.table(data, "", "broadcasts")),
        experiments=_experiments(r, data.get("experiments", []), zone, friend_coupon),
        rings=_rings(r, r.table(data, "", "rings")),
        staff_adjust_limit=r.whole(dashboard, "dashboard", "staff_adjust_limit", 1000, minimum=1))
    return check_premiums(rules, data, r)


def check_premiums(rules: Rules, data: dict[str, Any], r: _Reader) -> Rules:
    """The premiums-law check (rewards/premiums.py) as [legal] premiums asks: off, warn (the rules come back with
    the findings in `warnings`, one line each naming the setting and its line) or strict (the findings refuse
    the file, as any RulesError)."""
    from rewards import premiums  # it reads Rules: imported here, not at the top, to stay out of a cycle
    if rules.legal.premiums == "off":
        return rules
    findings = premiums.check(rules, data)
    lines = tuple(str(r.fail(f.setting, f.message)) for f in findings)
    if lines and rules.legal.premiums == "strict":
        more = "".join(f"\n{line}" for line in lines[1:])
        raise RulesError(f'{lines[0]} ([legal] premiums = "strict"){more}')
    return replace(rules, warnings=lines)  # logged once the service has started (bot/app.py), and by check-rules


def _budget(r: _Reader, table: dict[str, Any]) -> Budget:
    unknown = set(table) - {"referral_monthly_yen", "campaign_monthly_yen"}
    if unknown:
        raise r.fail(f"budget.{sorted(unknown)[0]}", "unknown setting; [budget] takes referral_monthly_yen and "
                                                      "campaign_monthly_yen")
    return Budget(r.whole(table, "budget", "referral_monthly_yen", 0), r.whole(table, "budget", "campaign_monthly_yen", 0))


def _legal(r: _Reader, table: dict[str, Any]) -> Legal:
    unknown = set(table) - {"premiums", "expected_sales_yen"}
    if unknown:
        raise r.fail(f"legal.{sorted(unknown)[0]}", "unknown setting; [legal] takes premiums and expected_sales_yen")
    return Legal(r.choice(table, "legal", "premiums", PREMIUM_MODES), r.whole(table, "legal", "expected_sales_yen", 0))


def _point_value(r: _Reader, points: dict[str, Any]) -> float:
    value = r.number(points, "points", "point_value_yen", 1.0)
    if not 0 < value <= 10_000:
        raise r.fail("points.point_value_yen", "must be more than 0 and at most 10000 (yen per point)")
    return value


def _extra_message_yen(r: _Reader, table: dict[str, Any]) -> float:
    value = table.get("extra_message_yen", 3)
    if set(table) - {"extra_message_yen"}:
        raise r.fail("broadcasts", f"unknown setting {sorted(set(table) - {'extra_message_yen'})[0]!r}")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 100:
        raise r.fail("broadcasts.extra_message_yen", f"must be a number of yen from 0 to 100, not {value!r}")
    return float(value)


def _shop_discount(r: _Reader, w: dict[str, Any], where: str, issue: str) -> dict[str, int]:
    """A shopify_discount reward's offer: yen_off or percent_off, and an optional minimum_order (docs/rules.md)."""
    given = [name for name in ("yen_off", "percent_off", "minimum_order") if name in w]
    if issue != SHOPIFY_DISCOUNT:
        if given:
            raise r.fail(f"{where}.{given[0]}", 'only a reward with issue = "shopify_discount" takes an amount off')
        return {}
    yen = r.whole(w, where, "yen_off", 0)
    percent = r.whole(w, where, "percent_off", 0)
    if (yen > 0) == (percent > 0):
        raise r.fail(f"{where}.yen_off", "a shopify_discount reward gives one of yen_off (yen) or percent_off (1-100)")
    if percent > 100:
        raise r.fail(f"{where}.percent_off", f"must be 1 to 100, not {percent}")
    return {"yen_off": yen, "percent_off": percent, "minimum_order": r.whole(w, where, "minimum_order", 0)}


_PREFIX = re.compile(r"^[A-Z0-9]{0,12}-?$")


def _friend_coupon(r: _Reader, table: dict[str, Any], where: str = "referral.friend_coupon") -> FriendCoupon | None:
    """[referral.friend_coupon] (or an experiment arm's): absent, or enabled = false, gives no coupon."""
    if not table or not r.flag(table, where, "enabled", True):
        return None
    unknown = set(table) - {"enabled", "kind", "yen_off", "percent_off", "minimum_order", "valid_days", "prefix",
                            "name"}
    if unknown:
        raise r.fail(f"{where}.{sorted(unknown)[0]}", "unknown setting; see docs/rules.md (friend coupon)")
    kind = r.choice(table, where, "kind", ("generated", "pool"))
    yen = r.whole(table, where, "yen_off", 0)
    percent = r.whole(table, where, "percent_off", 0)
    if (yen > 0) == (percent > 0):
        raise r.fail(f"{where}.yen_off", "give the offer as one of yen_off (yen) or percent_off (1-100)")
    if percent > 100:
        raise r.fail(f"{where}.percent_off", f"must be 1 to 100, not {percent}")
    prefix = table.get("prefix", "")
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise r.fail(f"{where}.prefix", f"up to 12 capital letters or digits, optionally ending in -, not {prefix!r}")
    if prefix and kind == "pool":
        raise r.fail(f"{where}.prefix", "a pool's codes are the shop's own: prefix is for kind = \"generated\"")
    minimum = r.whole(table, where, "minimum_order", 0)
    if "name" in table:
        name = r.texts(table, where, "name")
    elif yen:
        name = {"ja": f"初回のお買い物{yen:,}円引き", "en": f"¥{yen:,} off your first order"}
    else:
        name = {"ja": f"初回のお買い物{percent}%オフ", "en": f"{percent}% off your first order"}
    return FriendCoupon(kind=kind, yen_off=yen, percent_off=percent, minimum_order=minimum,
                        valid_days=r.whole(table, where, "valid_days", minimum=1) if "valid_days" in table else None,
                        prefix=prefix, name=name)


_QUIET = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _notifications(r: _Reader, table: dict[str, Any]) -> Notifications:
    """[notifications]: a true/false per notice, the quiet hours and the notices that ignore them."""
    where = "notifications"
    unknown = set(table) - {*NOTICE_KINDS, "quiet_hours", "ignore_quiet_hours"}
    if unknown:
        raise r.fail(f"{where}.{sorted(unknown)[0]}", f"unknown setting; notices are {', '.join(NOTICE_KINDS)}")
    enabled = frozenset(kind for kind in NOTICE_KINDS if r.flag(table, where, kind, True))
    quiet = table.get("quiet_hours", "21:00-09:00")
    start = end = None
    if quiet != "":
        match = _QUIET.match(quiet) if isinstance(quiet, str) else None
        hours = [int(g) for g in match.groups()] if match else []
        if not match or hours[0] > 23 or hours[2] > 23 or hours[1] > 59 or hours[3] > 59:
            raise r.fail(f"{where}.quiet_hours", f'must be "HH:MM-HH:MM" (e.g. "21:00-09:00") or "", not {quiet!r}')
        start, end = hours[0] * 60 + hours[1], hours[2] * 60 + hours[3]
    ignore = table.get("ignore_quiet_hours", sorted(Notifications.ignore_quiet_hours))
    if not isinstance(ignore, list) or set(ignore) - set(NOTICE_KINDS):
        raise r.fail(f"{where}.ignore_quiet_hours", f"name notices from: {', '.join(NOTICE_KINDS)}")
    return Notifications(enabled, start, end, frozenset(ignore))


def _prompts(r: _Reader, table: dict[str, Any], events: set[str]) -> Prompts:
    """[prompts]: a true/false per prompt, the weekly cap, the events that invite (with an optional least
    value each) and the reminder's days."""
    where = "prompts"
    known = {*PROMPT_KINDS, "weekly_cap", "events", "event_min_value", "reminder_days"}
    unknown = set(table) - known
    if unknown:
        raise r.fail(f"{where}.{sorted(unknown)[0]}", f"unknown setting; [prompts] takes {', '.join(sorted(known))}")
    enabled = frozenset(kind for kind in PROMPT_KINDS if r.flag(table, where, kind, False))
    marked = table.get("events", [])
    if not isinstance(marked, list) or not all(isinstance(n, str) for n in marked) or set(marked) - events:
        raise r.fail(f"{where}.events", f"name custom events from [earn.events.*]: {', '.join(sorted(events)) or 'none'}")
    least = table.get("event_min_value", {})
    if not isinstance(least, dict) or set(least) - set(marked):
        raise r.fail(f"{where}.event_min_value", 'give a least value per event listed in events, '
                                                 'e.g. { review = 5 }')
    minimum = {name: r.whole(least, f"{where}.event_min_value", name) for name in least}
    return Prompts(enabled=enabled, weekly_cap=r.whole(table, where, "weekly_cap", 1, minimum=1),
                   events=frozenset(marked), event_min_value=minimum,
                   reminder_days=r.whole(table, where, "reminder_days", 3, minimum=1))


def _rings(r: _Reader, table: dict[str, Any]) -> RingSettings:
    """[rings]: the mode (off | flag | hold), the score that flags a group and what counts as each signal."""
    where = "rings"
    default = RingSettings()
    whole = ("burst_size", "burst_minutes", "quick_minutes", "block_days", "mark_max", "batch_hours", "every_minutes")
    known = {"mode", "threshold", *whole}
    unknown = set(table) - known
    if unknown:
        raise r.fail(f"{where}.{sorted(unknown)[0]}", f"unknown setting; [rings] takes {', '.join(sorted(known))}")
    return RingSettings(mode=r.choice(table, where, "mode", RING_MODES),
                        threshold=r.number(table, where, "threshold", default.threshold),
                        **{k: r.whole(table, where, k, getattr(default, k), minimum=1) for k in whole})


_EXPERIMENT_ID = re.compile(r"[a-z0-9_\-]{1,40}")
ARM_SETTINGS = {"id", "share", "referrer_points", "friend_points", "friend_coupon"}


def _experiments(r: _Reader, entries: Any, zone: ZoneInfo, base_coupon: FriendCoupon | None
                 ) -> tuple[Experiment, ...]:
    """[[experiments]] with their [[experiments.arms]] (docs/rules.md, offer experiments). Checked here: ids,
    times, shares that add up to 100, arm coupons the shop can tell apart, and no two experiments at once."""
    if not isinstance(entries, list):
        raise r.fail("experiments", "write each experiment as [[experiments]]")
    experiments: list[Experiment] = []
    prefixes = {base_coupon.prefix} if base_coupon and base_coupon.kind == "generated" else set()
    for i, e in enumerate(entries):
        where = f"experiments[{i}]"
        unknown = set(e) - {"id", "name", "starts", "ends", "arms"}
        if unknown:
            raise r.fail(f"{where}.{sorted(unknown)[0]}", "unknown setting; see docs/rules.md (offer experiments)")
        exp_id = e.get("id")
        if not isinstance(exp_id, str) or not _EXPERIMENT_ID.fullmatch(exp_id):
            raise r.fail(f"{where}.id", "every experiment needs an id of 1-40 characters a-z, 0-9, _ or -")
        if any(x.id == exp_id for x in experiments):
            raise r.fail(f"{where}.id", f"another experiment already has the id {exp_id!r} (ids are never reused: "
                                        "its referrers keep their arms)")
        starts = r.time(e, where, "starts", zone)
        ends = r.time(e, where, "ends", zone, required=False)
        assert starts is not None
        if ends is not None and ends <= starts:
            raise r.fail(f"{where}.ends", "an experiment must end after it starts")
        arms: list[Arm] = []
        for j, a in enumerate(e.get("arms") or []):
            arm_where = f"{where}.arms[{j}]"
            unknown = set(a) - ARM_SETTINGS
            if unknown:
                raise r.fail(f"{arm_where}.{sorted(unknown)[0]}", f"an arm takes {', '.join(sorted(ARM_SETTINGS))}")
            arm_id = a.get("id")
            if not isinstance(arm_id, str) or not _EXPERIMENT_ID.fullmatch(arm_id):
                raise r.fail(f"{arm_where}.id", "every arm needs an id of 1-40 characters a-z, 0-9, _ or -")
            if any(x.id == arm_id for x in arms):
                raise r.fail(f"{arm_where}.id", f"another arm of {exp_id!r} already has the id {arm_id!r}")
            share = r.whole(a, arm_where, "share")
            if share > 100:
                raise r.fail(f"{arm_where}.share", f"a share is a percent of the referrers (0-100), not {share}")
            coupon = None
            if "friend_coupon" in a:
                coupon = _friend_coupon(r, r.table(a, arm_where, "friend_coupon"), f"{arm_where}.friend_coupon")
                if coupon is not None and (coupon.kind != "generated" or not coupon.prefix):
                    raise r.fail(f"{arm_where}.friend_coupon.prefix", 'an arm\'s coupon is kind = "generated" with '
                                 "a prefix of its own, so the shop's checkout can tell the arms' offers apart")
                if coupon is not None and coupon.prefix in prefixes:
                    raise r.fail(f"{arm_where}.friend_coupon.prefix", f"the prefix {coupon.prefix!r} is another "
                                 "coupon's already: give each arm's coupon its own")
                if coupon is not None:
                    prefixes.add(coupon.prefix)
            arms.append(Arm(id=arm_id, share=share,
                            referrer_points=r.whole(a, arm_where, "referrer_points") if "referrer_points" in a else None,
                            friend_points=r.whole(a, arm_where, "friend_points") if "friend_points" in a else None,
                            coupon_set="friend_coupon" in a, friend_coupon=coupon))
        if len(arms) < 2:
            raise r.fail(f"{where}.arms", "an experiment compares at least two [[experiments.arms]]")
        total = sum(a.share for a in arms)
        if total != 100:
            raise r.fail(f"{where}.arms", f"the arms' shares add up to {total}, not 100 "
                                          f"({', '.join(f'{a.id} = {a.share}' for a in arms)})")
        name = e.get("name", "")
        if not isinstance(name, str):
            raise r.fail(f"{where}.name", "must be a text")
        experiment = Experiment(id=exp_id, starts=starts, ends=ends, arms=tuple(arms), name=name)
        for other in experiments:
            if _overlap(other, experiment):
                raise r.fail(f"{where}.starts", f"runs at the same time as {other.id!r}: one experiment at a time "
                                                f"(give {other.id!r} an ends before this one starts)")
        experiments.append(experiment)
    return tuple(experiments)


def _overlap(a: Experiment, b: Experiment) -> bool:
    return (a.ends is None or b.starts < a.ends) and (b.ends is None or a.starts < b.ends)
