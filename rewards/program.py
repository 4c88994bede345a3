"""The referral and rewards program, applied atomically in Redis: one object callers hold, made of parts.

Every write that decides something runs as one Lua script over one member's keys (one cluster slot).
Work that spans two members — a referral pays both sides — is a sequence of idempotent single-member
steps driven by the friend's referral record, so it finishes after a crash and never pays twice.

Each part owns one concern and gets what it needs passed in: counters.py (the numbers), ledger.py (points
in and out, entries and lots), invites.py (invite codes, member tokens), board.py (the referrer boards),
referrals.py (attribution, settle, staff decisions),
friend_coupons.py (the referred friend's welcome coupon), members.py (sightings, profile, tiers, views),
orders.py (purchases, refunds), upkeep.py (the worker's clock work). Program wires them once and hands out
their methods under the names callers have always used: bound here, so a call costs no extra hop.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rewards.board import Board
from rewards.budget import Budget
from rewards.counters import Counters
from rewards.experiments import Experiments, Terms
from rewards.friend_coupons import FriendCoupons
from rewards.imports import Imports
from rewards.invites import Invites
from rewards.ledger import Ledger
from rewards.links import Links
from rewards.members import Members
from rewards.offer import ReferralOffer, referral_offer
from rewards.orders import Orders
from rewards.pre_follow import PreFollow
from rewards.privacy import Privacy
from rewards.prompts import Prompts
from rewards.referrals import Attribution, Referrals
from rewards.ring_watch import RingWatch
from rewards.rules import Rules
from rewards.shares import Shares
from rewards.shopify import Shopify
from rewards.upkeep import Upkeep


class Program:
    async def _experiment_arms(self, uid: str) -> dict[str, Any]:
        return {"experiment_arms": await self.experiments.arms_of(uid)}

    def __init__(self, redis: Any, rules: Rules, clock: Callable[[], float] = time.time):
        self.redis = redis
        self._rules = rules
        self.clock = clock  # may be replaced (tests move time): every part reads it through now_ms
        now_ms = self.now_ms
        self.counters = Counters(redis, rules, now_ms)
        self.points_ledger = Ledger(redis, rules, now_ms, self.counters)
        self.invites = Invites(redis)
        self.board = Board(redis, rules, now_ms)
        # offer experiments: the referrer's arm decides a referral's amounts and the friend's coupon
        self.experiments = Experiments(redis, rules, now_ms, audit=lambda *a, **k: self.members.audit(*a, **k))
        self.friend_coupons = FriendCoupons(redis, rules, now_ms, counters=self.counters)
        self.budget = Budget(redis, rules, now_ms, ledger=self.points_ledger)  # [budget]: monthly yen caps
        self.referrals = Referrals(redis, rules, now_ms, counters=self.counters, ledger=self.points_ledger,
                                   invites=self.invites, board=self.board, friend_coupons=self.friend_coupons,
                                   experiments=self.experiments, budget=self.budget)
        self.members = Members(redis, rules, now_ms, counters=self.counters, ledger=self.points_ledger,
                               referrals=self.referrals)
        self.rings = RingWatch(redis, rules, now_ms, counters=self.counters)  # [rings]: referral-ring detection
        self.orders = Orders(redis, rules, now_ms, counters=self.counters, ledger=self.points_ledger,
                             members=self.members, referrals=self.referrals, rings=self.rings)
        self.links = Links(redis, rules, now_ms, counters=self.counters, members=self.members, orders=self.orders)
        self.imports = Imports(redis, rules, now_ms, ledger=self.points_ledger, members=self.members,
                               links=self.links)  # what the shop already has (rewards/imports.py)
        self.upkeep = Upkeep(redis, rules, now_ms, counters=self.counters, ledger=self.points_ledger,
                             members=self.members)
        self.prompts = Prompts(redis, rules, now_ms)
        # invites through LIFF: attribution before the follow, and the shares the page reports
        self.pre_follow = PreFollow(redis, rules, now_ms, counters=self.counters, invites=self.invites)
        self.shares = Shares(redis, rules, now_ms, counters=self.counters, experiments=self.experiments)
        # a member's data on request: export and erasure (APPI)
        self.privacy = Privacy(redis, rules, now_ms, counters=self.counters, ledger=self.points_ledger,
                               members=self.members, referrals=self.referrals)
        self.members.was_erased = self.privacy.was_erased
        self.shopify = Shopify(redis, rules, now_ms, counters=self.counters, members=self.members, orders=self.orders,
                               links=self.links, friend_coupons=self.friend_coupons, privacy=self.privacy,
                               rings=self.rings)
        # what ring detection keeps about a member (hashed marks, group membership) is exported and erased too
        self.privacy.add_plumbing(export=self.rings.export, erase=self.rings.forget)
        # and the experiments' arm and totals kept under their user id (the arms' counters name nobody)
        self.privacy.add_plumbing(export=self._experiment_arms, erase=self.experiments.forget)

        members = self.members
        self.see = members.see
        self.sighting = members.sighting
        self.sighting_and_step = members.sighting_and_step
        self.exists = members.exists
        self.member = members.member
        self.language = members.language
        self.set_line_language = members.set_line_language
        self.set_language = members.set_language
        self.set_nickname = members.set_nickname
        self.set_birthday = members.set_birthday
        self.set_gift = members.set_gift
        self.welcome_points = members.welcome_points
        self.profile_points_paid = members.profile_points_paid
        self.birthday_points = members.birthday_points
        self.custom_event = members.custom_event
        self.adjust = members.adjust
        self.tier_rise = members.tier_rise
        self.mark_tier_told = members.mark_tier_told
        self.active_members = members.active_members
        self.member_ids = members.member_ids
        self.member_facts = members.member_facts
        self.audit = members.audit
        self.audit_adjustment = members.audit_adjustment

        ledger = self.points_ledger
        self.earn = ledger.earn
        self.apply = ledger.apply
        self.spend = ledger.spend
        self.recent_ledger = ledger.recent_ledger
        self.ledger = ledger.entries

        self.invite_code = self.invites.invite_code
        self.owner_of = self.invites.owner_of
        self.member_token = self.invites.member_token
        self.member_by_token = self.invites.member_by_token

        referrals = self.referrals
        self.attribute = self._attribute  # referrals.attribute, then the ring check
        self.settle = referrals.settle
        self.settle_all = referrals.settle_all
        self.decide_referral = referrals.decide_referral
        self.referral_status = referrals.referral_status
        self.milestone_reached = referrals.milestone_reached
        self.friend_reward = referrals.friend_reward

        self.friend_coupon = self.friend_coupons.friend_coupon
        self.friend_by_coupon = self.friend_coupons.friend_by_coupon

        self.month_of = self.board.month_of
        self.leaderboard = self.board.leaderboard

        self.record_purchase = self.orders.record_purchase
        self.refund = self.links.refund  # a kept order of a customer not linked yet is dropped, any other refunded

        upkeep = self.upkeep
        self.maintain = upkeep.maintain
        self.maintain_due = upkeep.maintain_due
        self.expiring_soon = upkeep.expiring_soon
        self.expiring = upkeep.expiring
        self.mark_warned = upkeep.mark_warned
        self.birthdays_due = upkeep.birthdays_due

        self.count = self.counters.count
        self.stats = self.counters.totals

    async def _attribute(self, friend: str, code: str, op: str) -> Attribution:
        outcome = await self.referrals.attribute(friend, code, op)
        if outcome.ok and not outcome.replay:
            await self.rings.after_attribution(friend)  # [rings]: a burst, a quick referrer, a cycle show now
        return outcome

    @property
    def rules(self) -> Rules:
        """Fixed at construction: every part was given these."""
        return self._rules

    def now_ms(self) -> int:
        """The program's clock, in ms: what every part judges time by."""
        return int(self.clock() * 1000)

    def referral_offer(self, gift: bool = False) -> ReferralOffer:
        """What a referral would pay each side now (campaigns included), on what condition, boosted until when;
        `gift`: for a referrer who gives their share to the friend (相手に譲る)."""
        return referral_offer(self._rules, self.now_ms(), gift)

    async def offer_for(self, referrer: str | None, gift: bool = False) -> ReferralOffer:
        """The offer a referral by `referrer` would pay now: their experiment arm's when one runs (assigned now at
        their first exposure, rewards/experiments.py), else as referral_offer()."""
        if referrer is None:
            return self.referral_offer(gift)
        return self._offer(await self.experiments.terms_for(referrer), gift)

    async def offer_of_referral(self, friend: str, gift: bool = False) -> ReferralOffer:
        """The offer the friend's referral pays: the arm it was attributed under (kept with it)."""
        return self._offer(await self.experiments.referral_terms(friend), gift)

    def _offer(self, terms: Terms, gift: bool) -> ReferralOffer:
        return referral_offer(self._rules, self.now_ms(), gift, (terms.referrer_points, terms.friend_points))
