"""A generated referral program with planted rings and honest look-alikes, as the ring detector's input.

Everyone gets their own marks (a card fingerprint, a Shopify customer, a delivery address) unless a shape says
otherwise. Honest members are referred by earlier members now and then, some take a reward, a few block later
(and a few of those quickly: honest churn). Then:

honest look-alikes
- families (2-5) at one address, referring each other over days; parents sometimes pay with one card, and now
  and then one uses another's coupon;
- coworkers (5-20) at one office address, referring each other over weeks;
- influencers with 80-200 real friends, one post bringing a burst of 25-40 within 20 minutes;
- a pickup point: 100 members with the convenience store's address.

planted rings (each member of one is a positive)
- star: one referrer, 6-15 fake friends within hours who take the welcome coupon and block, sharing a device;
- chain: A→B→C→… each referring the next within minutes, most on one device;
- cycle: 3-4 accounts referring each other round;
- burst: 10-25 attributions on one code within 15 minutes, bought with one Shopify account or churned;
- tree: a root whose friends each refer 2-3 more within minutes;
- coupon: a referrer whose friends' welcome coupons the referrer uses.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rewards import keys
from rewards.rings import Member

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
START = 1_780_000_000_000  # the program's first day (ms)
SPAN_DAYS = 90
SHAPES = ("star", "chain", "cycle", "burst", "tree", "coupon")


@dataclass
class Program:
    members: dict[str, Member] = field(default_factory=dict)
    planted: dict[str, str] = field(default_factory=dict)  # member -> the ring's shape
    honest_kind: dict[str, str] = field(default_factory=dict)  # member -> family | office | influencer | pickup

    def add(self, m: Member) -> Member:
        self.members[m.uid] = m
        return m


class _Maker:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.program = Program()
        self.n = 0

    def mark(self, kind: str) -> str:
        return f"{kind}:{self.rng.getrandbits(64):016x}"

    def member(self, joined_at: int, referrer: str | None = None, referred_at: int = 0) -> Member:
        self.n += 1
        marks = {self.mark("fp"), self.mark("addr")}
        if self.rng.random() < 0.6:
            marks.add(self.mark("cust"))
        return self.program.add(Member(uid=f"U{self.n:032x}", referrer=referrer,
                                       referred_at=referred_at if referrer else 0, joined_at=joined_at,
                                       marks=frozenset(marks)))

    def honest_life(self, m: Member) -> None:
        """A reward now and then; some block later; a few block soon after taking one (honest churn)."""
        rng = self.rng
        if rng.random() < 0.4:
            m.claimed_at = m.joined_at + rng.randint(1, 20 * DAY)
        roll = rng.random()
        if roll < 0.03 and m.claimed_at:
            m.claimed_at = m.joined_at + rng.randint(HOUR, DAY)
            m.blocked_at = m.claimed_at + rng.randint(HOUR, DAY)
        elif roll < 0.10:
            m.blocked_at = m.joined_at + rng.randint(5 * DAY, 60 * DAY)

    def any_time(self) -> int:
        return START + self.rng.randint(0, SPAN_DAYS * DAY)

    def honest(self, count: int) -> list[Member]:
        rng, made = self.rng, []
        times = sorted(self.any_time() for _ in range(count))
        for at in times:
            referrer = None
            if made and rng.random() < 0.35:
                referrer = rng.choice(made[-2000:]).uid
            m = self.member(at, referrer, at + rng.randint(MINUTE, HOUR))
            self.honest_life(m)
            made.append(m)
        return made

    def share(self, members: list[Member], kind: str, mark: str | None = None) -> str:
        mark = mark or self.mark(kind)
        for m in members:
            m.marks = frozenset({x for x in m.marks if not x.startswith(kind + ":")} | {mark})
        return mark

    # ---- honest look-alikes -----------------------------------------------------------------------------
    def family(self) -> list[Member]:
        rng = self.rng
        head = self.member(self.any_time())
        people = [head]
        for _ in range(rng.randint(1, 4)):
            referrer = rng.choice(people)
            at = referrer.joined_at + rng.randint(DAY, 20 * DAY)
            people.append(self.member(at, referrer.uid, at + rng.randint(MINUTE, HOUR)))
        self.share(people, "addr")
        if rng.random() < 0.3:  # the parents' card on a child's order
            self.share([head, rng.choice(people[1:])], "fp")
        if rng.random() < 0.05:  # a parent buys with a child's coupon
            head.used_coupons_of = frozenset({people[1].uid})
        for m in people:
            self.honest_life(m)
        return self.kinds(people, "family")

    def office(self) -> list[Member]:
        rng = self.rng
        people = [self.member(self.any_time())]
        for _ in range(rng.randint(4, 19)):
            referrer = rng.choice(people)
            at = referrer.joined_at + rng.randint(HOUR, 30 * DAY)
            people.append(self.member(at, referrer.uid, at + rng.randint(MINUTE, 2 * HOUR)))
        self.share(people, "addr")
        for m in people:
            self.honest_life(m)
        return self.kinds(people, "office")

    def influencer(self) -> list[Member]:
        rng = self.rng
        star = self.member(START + rng.randint(0, 30 * DAY))
        people = [star]
        post = star.joined_at + rng.randint(DAY, 40 * DAY)
        for _ in range(rng.randint(25, 40)):  # one post: a burst of real friends
            at = post + rng.randint(0, 20 * MINUTE)
            people.append(self.member(at, star.uid, at + rng.randint(MINUTE // 6, 3 * MINUTE)))
        for _ in range(rng.randint(55, 160)):
            at = star.joined_at + rng.randint(HOUR, 60 * DAY)
            people.append(self.member(at, star.uid, at + rng.randint(MINUTE, 3 * HOUR)))
        for m in people:
            self.honest_life(m)
        return self.kinds(people, "influencer")

    def pickup(self) -> list[Member]:
        people = [self.member(self.any_time()) for _ in range(100)]
        self.share(people, "addr")
        for m in people:
            self.honest_life(m)
        return self.kinds(people, "pickup")

    def kinds(self, people: list[Member], kind: str) -> list[Member]:
        for m in people:
            self.program.honest_kind[m.uid] = kind
        return people

    # ---- planted rings ----------------------------------------------------------------------------------
    def fake(self, referrer: Member, at: int, device: str | None = None) -> Member:
        # the coupon taken within the hour; blocked within two days (7 in 10)
        """A fake friend: takes the welcome coupon at once and, mostly, blocks within a day or two."""
        rng = self.rng
        m = self.member(at, referrer.uid, at + rng.randint(MINUTE // 6, 5 * MINUTE))
        if rng.random() < 0.9:
            m.claimed_at = m.referred_at + rng.randint(MINUTE, HOUR)
            if rng.random() < 0.7:
                m.blocked_at = m.claimed_at + rng.randint(HOUR, 2 * DAY)
        if device and rng.random() < 0.5:
            self.share([m], "fp", device)
        return m

    def star(self) -> list[Member]:
        rng = self.rng
        boss = self.member(self.any_time())
        device = self.share([boss], "fp")
        at = boss.joined_at + rng.randint(HOUR, 10 * DAY)
        people = [boss]
        for _ in range(rng.randint(6, 15)):
            at += rng.randint(2 * MINUTE, 40 * MINUTE)
            people.append(self.fake(boss, at, device))
        if rng.random() < 0.3:
            self.share(rng.sample(people, 3), "cust")
        return people

    def chain(self) -> list[Member]:
        rng = self.rng
        head = self.member(self.any_time())
        device = self.share([head], "fp")
        people = [head]
        for _ in range(rng.randint(3, 7)):
            prev = people[-1]
            at = (prev.referred_at or prev.joined_at) + rng.randint(3 * MINUTE, 25 * MINUTE)
            m = self.member(at, prev.uid, at + rng.randint(MINUTE // 6, 2 * MINUTE))
            if rng.random() < 0.6:
                self.share([m], "fp", device)
            people.append(m)
        return people

    def cycle(self) -> list[Member]:
        rng = self.rng
        at = self.any_time()
        people = [self.member(at + i * rng.randint(MINUTE, 10 * MINUTE)) for i in range(rng.randint(3, 4))]
        for i, m in enumerate(people):  # each refers the next, the last the first
            nxt = people[(i + 1) % len(people)]
            nxt.referrer = m.uid
            nxt.referred_at = max(nxt.joined_at, m.joined_at) + rng.randint(MINUTE, 20 * MINUTE)
        if rng.random() < 0.4:
            self.share(rng.sample(people, 2), "fp")
        return people

    def burst(self) -> list[Member]:
        rng = self.rng
        boss = self.member(self.any_time())
        at = boss.joined_at + rng.randint(HOUR, 10 * DAY)
        people = [boss]
        account = self.mark("cust")
        bought = rng.random() < 0.5  # bought with one Shopify account, or churned for the coupon
        for _ in range(rng.randint(10, 25)):
            t = at + rng.randint(0, 15 * MINUTE)
            m = self.member(t, boss.uid, t + rng.randint(MINUTE // 6, MINUTE))
            if bought and rng.random() < 0.7:
                self.share([m], "cust", account)
            elif not bought and rng.random() < 0.6:
                m.claimed_at = m.referred_at + rng.randint(MINUTE, HOUR)
                m.blocked_at = m.claimed_at + rng.randint(HOUR, DAY)
            people.append(m)
        return people

    def tree(self) -> list[Member]:
        rng = self.rng
        root = self.member(self.any_time())
        at = root.joined_at + rng.randint(HOUR, 5 * DAY)
        people = [root]
        for _ in range(3):
            at += rng.randint(5 * MINUTE, 3 * HOUR)
            kid = self.fake(root, at)
            people.append(kid)
            t = kid.referred_at
            for _ in range(rng.randint(2, 3)):
                t += rng.randint(MINUTE, 10 * MINUTE)
                people.append(self.fake(kid, t))
        return people

    def coupon(self) -> list[Member]:
        rng = self.rng
        boss = self.member(self.any_time())
        at = boss.joined_at + rng.randint(HOUR, 10 * DAY)
        account = self.share([boss], "cust")
        friends, used = [], set()
        for _ in range(rng.randint(3, 6)):
            at += rng.randint(HOUR, DAY)
            m = self.member(at, boss.uid, at + rng.randint(MINUTE, 10 * MINUTE))
            m.claimed_at = m.referred_at + rng.randint(MINUTE, HOUR)
            friends.append(m)
            if rng.random() < 0.5:  # the referrer's linked account uses the coupon: the order is theirs
                used.add(m.uid)
            else:  # bought as a guest or unlinked, so credited to the friend with the referrer's account
                self.share([m], "cust", account)
        boss.used_coupons_of = frozenset(used)
        return [boss, *friends]


def generate(members: int = 10_000, seed: int = 1) -> Program:
    """About `members` members: ~3% in planted rings, ~20% honest look-alikes, the rest plain honest members."""
    maker = _Maker(seed)
    scale = members / 10_000
    plan = {"star": 15, "chain": 10, "cycle": 8, "burst": 8, "tree": 6, "coupon": 10}
    for shape, count in plan.items():
        for _ in range(max(1, round(count * scale))):
            for m in getattr(maker, shape)():
                maker.program.planted[m.uid] = shape
    for _ in range(max(1, round(300 * scale))):
        maker.family()
    for _ in range(max(1, round(40 * scale))):
        maker.office()
    for _ in range(max(1, round(5 * scale))):
        maker.influencer()
    maker.pickup()
    maker.honest(max(0, members - maker.n))
    return maker.program


async def store(redis: Any, program: Program, chunk: int = 1_000) -> None:
    """Write the program into Redis as the bot keeps it (the keys rewards/ring_watch.py reads), so the
    whole-graph pass can be run on it: member record and list, referral records both sides, the first coupon
    taken, the ring marks and their index."""
    members = list(program.members.values())
    for start in range(0, len(members), chunk):
        async with redis.pipeline(transaction=False) as pipe:
            for m in members[start:start + chunk]:
                pipe.hset(keys.members(m.uid), m.uid, "")
                record = {keys.field("first_seen_at"): m.joined_at}
                if m.blocked_at:
                    record |= {keys.field("blocked"): 1, keys.field("blocked_at"): m.blocked_at}
                pipe.hset(keys.member(m.uid), mapping=record)
                if m.referrer:
                    pipe.hset(keys.referral(m.uid), mapping={"referrer": m.referrer, "created_at": m.referred_at,
                                                             "status": "pending"})
                    pipe.hset(keys.referrals_made(m.referrer), m.uid, "pending")
                if m.claimed_at:
                    pipe.zadd(keys.coupon_order(m.uid), {"coupon": m.claimed_at})
                marks = [*m.marks, *(f"used:{h}" for h in m.used_coupons_of)]
                if marks:
                    pipe.sadd(keys.ring_marks(m.uid), *marks)
                for mark in m.marks:
                    pipe.sadd(keys.ring_mark(mark), m.uid)
            await pipe.execute()
