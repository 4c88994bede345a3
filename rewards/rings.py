"""Referral rings: groups of members that look like one person (or a few) farming the referral rewards.

Pure: it takes what we know of the members (`Member`) and the rules' [rings] settings and answers the
suspicious groups, each with a score and its reasons. rewards/ring_watch.py reads the input from Redis and
acts on the answer; benchmarks/rings.py feeds it a generated program directly.

How a group forms: union-find over the members, joined by
- a shared mark: an order fingerprint (`fp:`), a Shopify customer (`cust:`) or a delivery address (`addr:`),
  each a hash (a mark shared by more than `mark_max` members is a pickup point or a mall, not a ring: ignored);
- a coupon used by someone else (a friend's welcome coupon or a reward coupon on another member's order);
- a referral edge that carries evidence: the friend joined, claimed and blocked quickly; the friend came in
  a burst on the referrer's code; the friend turned referrer within minutes; the edge closes a cycle.
A plain referral edge does not join: an influencer's many honest friends stay apart.

How a group scores: each signal adds its weight times the share of the group it touches,
min(1, touched / max(3, size / 2)), so a ring (most members show it) scores high and a large honest group
where a few members churned or shared a card scores low. A group scores at least `threshold` to be flagged.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

# Reason codes, with their weights. Stronger signals say "one person" (a card, a Shopify account, a coupon),
# weaker ones say "close people" (an address: families and offices share one).
WEIGHTS = {
    "CYCLE": 0.9,  # referrals that go round: A→B→C→A
    "CUSTOMER": 0.7,  # one Shopify customer on different members' orders
    "COUPON": 0.7,  # a member's coupon used on someone else's order
    "JOIN_CLAIM_BLOCK": 1.0,  # joined, took a reward, blocked within days
    "FINGERPRINT": 0.6,  # one order fingerprint (payment, device) on different members' orders
    "QUICK_REFERRER": 0.6,  # a friend who turned referrer within minutes of being referred
    "BURST": 0.4,  # many attributions on one code within minutes
    "ADDRESS": 0.25,  # one delivery address
}
RING_MODES = ("off", "flag", "hold")  # off: nothing runs; flag: into the review queue; hold: and rewards wait
MARK_REASONS = {"fp": "FINGERPRINT", "cust": "CUSTOMER", "addr": "ADDRESS"}


@dataclass(frozen=True)
class Settings:
    """[rings] in the rules (rewards/rules.py reads them)."""

    mode: str = "off"  # off | flag | hold
    threshold: float = 1.0  # a group's score at which it is flagged
    burst_size: int = 5  # attributions on one code …
    burst_minutes: int = 30  # … within this many minutes make a burst
    quick_minutes: int = 30  # a friend who refers someone within this many minutes of being referred
    block_days: int = 3  # joined, claimed a reward and blocked within this many days of joining
    mark_max: int = 50  # a mark shared by more members is ignored (a pickup point, a mall)
    batch_hours: int = 24  # a flagged group takes in its referrers' other friends referred this close to its own
    every_minutes: int = 60  # the whole-graph pass in the worker's clock


@dataclass
class Member:
    uid: str
    referrer: str | None = None
    referred_at: int = 0  # ms: when they were attributed (0: never referred)
    joined_at: int = 0  # ms: first seen
    claimed_at: int = 0  # ms: the first reward they took (a claim, their welcome coupon); 0: none
    blocked_at: int = 0  # ms: when they blocked us; 0: they have not
    marks: frozenset[str] = frozenset()  # "fp:<hash>", "cust:<hash>", "addr:<hash>"
    used_coupons_of: frozenset[str] = frozenset()  # members whose coupon this member's orders carried


@dataclass(frozen=True)
class Group:
    members: tuple[str, ...]  # sorted
    score: float
    reasons: dict[str, int]  # reason code -> members it touches, strongest first

    @property
    def id(self) -> str:
        """Stable while the group's smallest member stays: the same group found again keeps its id."""
        return "ring:" + self.members[0]

    def reason_text(self) -> str:
        return ", ".join(f"{code} {n}" for code, n in self.reasons.items())


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent.setdefault(x, x)
        while parent != x:
            self.parent[x] = self.parent.setdefault(parent, parent)
            x, parent = parent, self.parent[parent]
        return x

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def detect(members: Iterable[Member], settings: Settings) -> list[Group]:
    """Every group of two or more members the signals join, scored; the flagged ones (score ≥ threshold)
    first. Deterministic: the same input gives the same groups in the same order."""
    by_id = {m.uid: m for m in members}
    union = _Union()
    touched: dict[str, set[str]] = defaultdict(set)  # reason -> members it touches

    # shared marks
    holders: dict[str, list[str]] = defaultdict(list)
    for m in by_id.values():
        for mark in m.marks:
            holders[mark].append(m.uid)
    for mark, uids in holders.items():
        if 2 <= len(uids) <= settings.mark_max:
            reason = MARK_REASONS.get(mark.split(":", 1)[0])
            if reason is None:
                continue
            for uid in uids[1:]:
                union.join(uids[0], uid)
            touched[reason].update(uids)

    # coupons used by someone else
    for m in by_id.values():
        for holder in m.used_coupons_of:
            if holder != m.uid:
                union.join(m.uid, holder)
                touched["COUPON"].update((m.uid, holder))

    # referral edges with evidence
    friends_of: dict[str, list[Member]] = defaultdict(list)
    for m in by_id.values():
        if m.referrer:
            friends_of[m.referrer].append(m)
    block_ms = settings.block_days * 86_400_000
    for m in by_id.values():
        if m.referrer and m.claimed_at and m.blocked_at and m.blocked_at - m.joined_at <= block_ms \
                and m.blocked_at >= m.claimed_at:
            union.join(m.uid, m.referrer)
            touched["JOIN_CLAIM_BLOCK"].add(m.uid)
    burst_ms = settings.burst_minutes * 60_000
    for referrer, friends in friends_of.items():
        friends.sort(key=lambda f: (f.referred_at, f.uid))
        start = 0
        in_burst: set[str] = set()
        for end, friend in enumerate(friends):  # a sliding window over the code's attributions
            while friend.referred_at - friends[start].referred_at > burst_ms:
                start += 1
            if end - start + 1 >= settings.burst_size:
                in_burst.update(f.uid for f in friends[start:end + 1])
        for uid in in_burst:
            union.join(uid, referrer)
        touched["BURST"].update(in_burst)
    quick_ms = settings.quick_minutes * 60_000
    for referrer, friends in friends_of.items():
        me = by_id.get(referrer)
        if me is None or not me.referrer or not me.referred_at:
            continue
        first = friends[0]  # sorted above: their earliest friend
        if 0 <= first.referred_at - me.referred_at <= quick_ms:
            union.join(referrer, me.referrer)
            union.join(referrer, first.uid)
            touched["QUICK_REFERRER"].add(referrer)
    for cycle in _cycles(by_id):
        for uid in cycle:
            union.join(cycle[0], uid)
        touched["CYCLE"].update(cycle)

    groups: dict[str, list[str]] = defaultdict(list)
    for uid in union.parent:
        groups[union.find(uid)].append(uid)
    found = [_score(sorted(uids), touched, settings) for uids in groups.values() if len(uids) >= 2]
    found = [_with_batch(g, friends_of, settings) if g.score >= settings.threshold else g for g in found]
    found.sort(key=lambda g: (-g.score, g.members[0]))
    return found


def _with_batch(group: Group, friends_of: dict[str, list[Member]], settings: Settings) -> Group:
    """A flagged group with the rest of its batch: friends of its members, referred within batch_hours of a
    friend of the same referrer in the group (fake accounts made together; a few left no trace of their own).
    The score and reasons stay those of the evidence."""
    inside = set(group.members)
    batch_ms = settings.batch_hours * 3_600_000
    more: set[str] = set()
    for referrer in group.members:
        friends = friends_of.get(referrer, [])
        times = [f.referred_at for f in friends if f.uid in inside]
        if not times:
            continue
        more.update(f.uid for f in friends if f.uid not in inside
                    and any(abs(f.referred_at - t) <= batch_ms for t in times))
    if not more:
        return group
    return Group(members=tuple(sorted(inside | more)), score=group.score, reasons=group.reasons)


def _score(uids: list[str], touched: dict[str, set[str]], settings: Settings) -> Group:
    inside = set(uids)
    scale = max(3.0, len(uids) / 2)
    score, reasons = 0.0, {}
    for reason, weight in WEIGHTS.items():
        n = len(touched.get(reason, set()) & inside)
        if n:
            score += weight * min(1.0, n / scale)
            reasons[reason] = n
    ordered = dict(sorted(reasons.items(), key=lambda kv: -WEIGHTS[kv[0]] * min(1.0, kv[1] / scale)))
    return Group(members=tuple(uids), score=round(score, 3), reasons=ordered)


def _cycles(by_id: dict[str, Member]) -> list[list[str]]:
    """Referral cycles (each member has one referrer, so following referrers finds each cycle once)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []
    for start in sorted(by_id):
        path: list[str] = []
        uid: str | None = start
        while uid is not None and uid in by_id and state.get(uid) is None:
            state[uid] = 1
            path.append(uid)
            uid = by_id[uid].referrer
        if uid is not None and state.get(uid) == 1:
            cycles.append(path[path.index(uid):])
        for seen in path:
            state[seen] = 2
    return cycles


def flagged(groups: Iterable[Group], settings: Settings) -> list[Group]:
    return [g for g in groups if g.score >= settings.threshold]


@dataclass
class Measure:
    """Precision and recall of flagged members against the planted ones (the benchmark and its test)."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    flagged_honest: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        planted = self.true_positives + self.false_negatives
        return self.true_positives / planted if planted else 1.0


def measure(groups: Iterable[Group], planted: set[str], settings: Settings) -> Measure:
    hit = {uid for g in flagged(groups, settings) for uid in g.members}
    return Measure(true_positives=len(hit & planted), false_positives=len(hit - planted),
                   false_negatives=len(planted - hit), flagged_honest=sorted(hit - planted))
