"""Referrals: a code message attributes a friend to a referrer, the friend's first order (or joining, or a
staff approval) completes it, and settle() pays the referrer's side.

Work that spans two members is a sequence of idempotent single-member steps driven by the friend's
referral record (rewards/keys.py `referral`), so it finishes after a crash and never pays twice. The
friend is put in `shokai:settle` before each step that settle() must follow.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewards import engine, keys
from rewards.board import Board
from rewards.budget import HOLD_REASON, Budget
from rewards.counters import Counters
from rewards.coupons import Coupon
from rewards.errors import ProgramError
from rewards.experiments import Experiments, arm_terms
from rewards.friend_coupons import FriendCoupons
from rewards.invites import Invites
from rewards.ledger import Ledger
from rewards.names import NAME_FIELDS, shown_nickname
from rewards.part import Part
from rewards.rules import Milestone, Rules

# Refusal reasons for a code message, in the order they are checked.
SELF_REFERRAL = "SELF_REFERRAL"
ALREADY_REFERRED = "ALREADY_REFERRED"
EXISTING_CUSTOMER = "EXISTING_CUSTOMER"
EXISTING_MEMBER = "EXISTING_MEMBER"
UNKNOWN_CODE = "UNKNOWN_CODE"
EXPIRED = "EXPIRED"
RATE_LIMITED = "RATE_LIMITED"

REFERRAL_STATUSES = ("pending", "review", "completed", "voided")


@dataclass(frozen=True)
class Attribution:
    ok: bool
    reason: str | None = None  # a refusal reason code when not ok
    referrer: str | None = None
    replay: bool = False  # the same event again: already recorded, nothing new happened
    coupon: Coupon | None = None  # the friend's welcome coupon (the same one on a replay); None: none, or owed


@dataclass(frozen=True)
class ReferralCounts:
    invited: int
    pending: int
    completed: int


@dataclass(frozen=True)
class FriendReferral:
    user_id: str  # the friend, named to the referrer as handlers/names.py says
    nickname: str | None  # only when the friend consented to show it (rewards/names.py)
    status: str  # pending | completed | voided
    needs: str | None  # what a pending referral still waits for: FIRST_PURCHASE | REVIEW | BUDGET | HOLD
    minimum_order: int  # with FIRST_PURCHASE: the yen the first order must reach (0: any)
    at_ms: int  # when the friend sent the code


@dataclass(frozen=True)
class ReferralStatus:
    referrals: ReferralCounts
    friends: list[FriendReferral]  # newest first
    next_milestone: Milestone | None
    to_next_milestone: int | None  # completed referrals still needed for it


def _friends_of(made: dict) -> dict[str, str]:
    """friend -> status from a referrer's referrals hash (its other fields are "friend|what")."""
    pairs = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in made.items()}
    return {friend: status for friend, status in pairs.items() if "|" not in friend and status in REFERRAL_STATUSES}


def _newer_status(made_status: str, own: bytes | str | None) -> str:
    """The friend's own status when it is a known one, else what the referrer's record says."""
    status = own.decode() if isinstance(own, bytes) else own
    return status if status in REFERRAL_STATUSES else made_status


def referral_counts(statuses: dict[str, str]) -> ReferralCounts:
    """The counts members see: invited (every referral), pending (waiting for an order or for review), done."""
    counts = list(statuses.values())
    return ReferralCounts(invited=len(counts), pending=counts.count("pending") + counts.count("review"),
                          completed=counts.count("completed"))


class Referrals(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *, counters: Counters, ledger: Ledger,
                 invites: Invites, board: Board, friend_coupons: FriendCoupons, experiments: Experiments,
                 budget: Budget):
        super().__init__(redis, rules, now_ms)
        self.experiments = experiments  # the arm decides the amounts; holds are decided where they always were
        self.budget = budget
        self.counters = counters
        self.friend_coupons = friend_coupons
        self.ledger = ledger
        self.invites = invites
        self.board = board
        self._attribute = self.script("attribute", moves_points=True)
        self._referrer_step_script = self.script("referrer_step", moves_points=True)
        self._void_referral = self.script("void_referral", moves_points=True)
        self._review_decide = self.script("review_decide", moves_points=True)

    def friend_award(self, at_ms: int, note: str, points: int | None = None) -> dict[str, Any]:
        """The friend's referral reward, as the scripts that pay it take it; `points`: the base amount when an
        experiment's arm decides it (rewards/experiments.py), else [referral] friend_points."""
        points = self.rules.friend_points if points is None else points
        return self.ledger.award("referral.friend", points, at_ms, "referral:friend", "referral",
                                 hold_days=self.rules.referral_hold_days, note=note).spec(self.rules)

    async def attribute(self, friend: str, code: str, op: str) -> Attribution:
        """A code message from `friend`: attribute them to the code's owner, or say why not."""
        await self.counters.count("codes_sent")
        guess_key = keys.guesses(friend)
        failures = int(await self.redis.get(guess_key) or 0)
        if failures >= self.rules.guess_max_failures:
            return await self._refused(RATE_LIMITED)
        referrer = await self.invites.owner_of(code)
        if referrer is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(guess_key)
                pipe.ttl(guess_key)
                _, ttl = await pipe.execute()
            if ttl < 0:  # the window starts with the first failure (EXPIRE NX needs Redis 7)
                await self.redis.expire(guess_key, self.rules.guess_per_minutes * 60)
            return await self._refused(UNKNOWN_CODE)
        if referrer == friend:
            return await self._refused(SELF_REFERRAL)
        now = self.now_ms()
        on_join = self.rules.referral_trigger == "join"
        terms = await self.experiments.terms_for(referrer)  # the referrer's arm: kept with the referral
        coupon = terms.friend_coupon is not None
        arm = {"exp": terms.experiment, "arm": terms.arm} if terms.experiment else {}
        friend_award = self.friend_award(now, "join", terms.friend_points)
        if on_join or coupon:
            await self.redis.sadd(keys.SETTLE, friend)  # the intent, written before the step it guards
        # [budget]: a completion on joining is reserved first and held (BUDGET) when it does not fit (budget.py)
        hold = on_join and not await self.budget_gate(friend, referrer, friend_award, now, terms.referrer_points)
        outcome, recorded_referrer, replay = await self._attribute(
            keys=[*keys.ledger_keys(friend), keys.referral(friend)],
            args=[json.dumps({"referrer": referrer, "code": code, "op": op, "now": now,
                              "window": self.rules.referral_window_ms, "complete_on_join": on_join,
                              "hold_reason": HOLD_REASON if hold else None,
                              "friend_award": friend_award, "coupon": coupon, **arm})])
        outcome = outcome.decode()
        if on_join:
            await self.budget_after(friend, now)
        if outcome != "OK":
            return await self._refused(outcome)
        # The referrer's half; on a replay it is simply written again.
        await self._referrer_step(referrer, friend, "pending")
        await self.experiments.attributed(terms, referrer, friend)  # once per friend, a replay too (a crash)
        if on_join or coupon:
            await self.settle(friend)  # the referrer's side (join), the welcome coupon: each once
        if not replay:
            await self.counters.count("referrals_pending")
            if on_join:
                await self.counters.count("points_issued", terms.friend_points)
        return Attribution(ok=True, referrer=recorded_referrer.decode(), replay=bool(replay),
                           coupon=await self.friend_coupons.held(friend) if coupon else None)

    async def decide_referral(self, friend: str, decision: str, by: str) -> tuple[bool, str, str | None]:
        """Staff's decision ("approve" | "void") on a reviewed (or, to void, pending) referral: (changed now,
        the referral's status, the referrer when settle paid them just now). Taken again it changes nothing.

        Raises ProgramError UNKNOWN_REFERRAL, NOT_IN_REVIEW or NOT_VOIDABLE with nothing changed."""
        now = self.now_ms()
        terms = await self.experiments.referral_terms(friend)
        spec = self.friend_award(now, "review", terms.friend_points)
        await self.redis.sadd(keys.SETTLE, friend)  # the intent, written before the step it guards
        referrer = (await self.redis.hget(keys.referral(friend), "referrer") or b"").decode()
        if decision == "approve" and referrer:  # [budget]: counted; staff's approval pays past the cap
            await self.budget.reserve_referral(friend, referrer, int(spec["amount"]), now, terms.referrer_points,
                                               force=True)
        outcome, status = await self._review_decide(keys=[*keys.ledger_keys(friend), keys.referral(friend)],
                                                    args=[json.dumps({"decision": decision, "at": now, "by": by,
                                                                      "friend_award": spec})])
        outcome, status = outcome.decode(), status.decode()
        if decision == "void" or outcome not in ("OK", "ALREADY"):
            await self.budget_after(friend, now)  # nothing completes: give a reservation back, leave the held set
        if outcome not in ("OK", "ALREADY"):
            await self.redis.srem(keys.SETTLE, friend)
            messages = {"UNKNOWN_REFERRAL": "that member was never referred",
                        "NOT_IN_REVIEW": f"only a referral in review can be approved (this one is {status})",
                        "NOT_VOIDABLE": f"only a pending or reviewed referral can be voided (this one is {status})"}
            raise ProgramError(outcome, messages[outcome])
        if outcome == "OK" and decision == "approve":
            await self.ledger.schedule(friend, spec)  # the friend's points may be held: release them on time
            await self.counters.count("points_issued", int(spec["amount"]))
            await self.counters.count("referrals_approved")
        paid_referrer = await self.settle(friend)  # the referrer's side (or the void on it), once
        return outcome == "OK", status, paid_referrer

    # ---- [budget]: the completion path's two small hooks (rewards/budget.py explains the steps) -------------------
    async def budget_gate(self, friend: str, referrer: str, friend_award: dict[str, Any], at_ms: int,
                          referrer_points: int) -> bool:
        """Before a step that may complete the friend's referral: reserve its cost (the friend's award, and the
        referrer's base points under the referral's terms). False: hold it (BUDGET)."""
        return await self.budget.reserve_referral(friend, referrer, int(friend_award["amount"]), at_ms,
                                                  referrer_points)

    async def budget_after(self, friend: str, at_ms: int) -> None:
        """After that step (its reservation made at `at_ms`): unless the referral is completed (settle() turns the
        reservation into the spend) or held for the budget, give the reservation back and take the friend off
        the held set."""
        if not self.budget.cap():
            return
        status, reason = await self.redis.hmget(keys.referral(friend), ["status", "review_reason"])
        if status is None or status == b"completed" or (status == b"review" and reason == HOLD_REASON.encode()):
            return
        await self.budget.settle_referral(friend, "", at_ms, completed=False)  # and off the held set

    async def _refused(self, reason: str) -> Attribution:
        await self.counters.count(f"refused:{reason}")
        return Attribution(ok=False, reason=reason)

    async def _referrer_step(self, referrer: str, friend: str, status: str, award: dict | None = None,
                             at_ms: int = 0) -> tuple[int, int]:
        at = at_ms or self.now_ms()
        milestones = [{"count": m.count, "award": self.ledger.award("referral.milestone", m.points, at,
                                                                    f"milestone:{m.count}", "milestone"
                                                                    ).spec(self.rules)}
                      for m in self.rules.milestones]
        month = engine.shop_time(self.rules, at).strftime("%Y-%m")
        written, milestone = await self._referrer_step_script(
            keys=[*keys.ledger_keys(referrer), keys.referrals_made(referrer)],
            args=[json.dumps({"friend": friend, "status": status, "award": award, "milestones": milestones,
                              "monthly_cap": self.rules.referral_monthly_cap, "month": month, "at": at,
                              "write_off": self.ledger.write_off})])
        if award:
            await self.ledger.schedule(referrer, award)
        if award and int(written) == 1:
            await self.counters.count("points_issued", int(award["amount"]))
        if int(milestone):
            await self.counters.count("points_issued",
                                      sum(m.points for m in self.rules.milestones if m.count == int(milestone)))
        if status in ("completed", "voided"):
            await self.board.rank_month(referrer, friend, only_up=status == "completed")
            await self.board.rank_all_time(referrer, only_up=status == "completed")
        return int(written), int(milestone)

    async def of_friend(self, friend: str) -> tuple[str | None, str | None]:
        """The friend's referral as it stands: (status, referrer); (None, None) when they were never referred."""
        status, referrer = await self.redis.hmget(keys.referral(friend), ["status", "referrer"])
        return (status.decode() if status else None), (referrer.decode() if referrer else None)

    async def settle(self, friend: str) -> str | None:
        """Finish the referrer's side of the friend's referral; returns the referrer when it paid just now.

        Safe to call any number of times: each step is keyed by an operation id.
        """
        ref = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(keys.referral(friend))).items()}
        status, referrer = ref.get("status"), ref.get("referrer")
        paid_now = None
        if ref.get("coupon") == "due":  # a crash between the attribution and the coupon: give it now
            await self.friend_coupons.give(friend)
        if referrer and status == "completed" and not ref.get("referrer_paid"):
            at = int(ref.get("completed_at") or self.now_ms())
            hold = self.rules.referral_hold_days
            gift = self.rules.allow_gift and (await self.redis.hget(keys.member(referrer), keys.field("gift"))) == b"1"
            terms = arm_terms(self.rules, ref.get("exp"), ref.get("arm"))  # the arm it was attributed under
            points = terms.referrer_points
            if gift:  # 相手に譲る: the friend gets the referrer's reward too
                await self.ledger.earn(friend, self.ledger.award("referral.referrer", points, at, "referral:gift",
                                                                 "referral", hold_days=hold, note=referrer))
            award = None if gift else self.ledger.award("referral.referrer", points, at, f"referral:{friend}",
                                                        "referral", hold_days=hold, note=friend).spec(self.rules)
            written, _ = await self._referrer_step(referrer, friend, "completed", award, at)
            # [budget]: what both sides were paid becomes the month's spend (before referrer_paid: a re-run redoes it)
            await self.budget.settle_referral(friend, referrer, at, completed=True)
            await self.redis.hset(keys.referral(friend), mapping={"referrer_paid": 1, "gift": int(gift)})
            if written == 1 or gift:
                await self.counters.count("referrals_completed")
                await self._count_completed(referrer, at)
                paid_now = referrer
            if terms.experiment:  # the arm's figures: both sides' points, once per friend
                await self.experiments.completed(referrer, friend, terms, at)
        elif referrer and status == "voided" and ref.get("referrer_paid") and not ref.get("referrer_reversed"):
            if ref.get("gift") == "1":
                await self.ledger.reverse(friend, "referral:gift", "void:referral:gift")
            await self._referrer_step(referrer, friend, "voided")
            await self.redis.hset(keys.referral(friend), mapping={"referrer_reversed": 1})
            await self.counters.count("referrals_voided")
        elif referrer and status == "voided" and not ref.get("referrer_paid") and not ref.get("referrer_reversed"):
            # voided before it paid anyone (staff voided a pending or reviewed referral, or its order was
            # refunded while in review): the referrer's record says so, nothing to take back
            await self._referrer_step(referrer, friend, "voided")
            await self.redis.hset(keys.referral(friend), mapping={"referrer_reversed": 1})
            await self.counters.count("referrals_voided")
        await self.redis.srem(keys.SETTLE, friend)
        return paid_now

    async def _count_completed(self, referrer: str, completed_at: int) -> None:
        """The referrer's first completed referral, for the viral cycle time (kept once)."""
        joined = await self.redis.hget(keys.member(referrer), keys.field("first_seen_at"))
        if joined is not None:
            await self.redis.hsetnx(keys.CYCLES, referrer, f"{int(joined)}|{completed_at}")

    async def settle_all(self) -> int:
        """Finish every referral a crash left half done (run by the worker now and then)."""
        friends = [f.decode() for f in await self.redis.smembers(keys.SETTLE)]
        for friend in friends:
            await self.settle(friend)
        return len(friends)

    async def friend_blocked(self, friend: str, at_ms: int) -> None:
        """A friend who blocks while their referral's points are on hold voids it, on both sides."""
        if not self.rules.referral_hold_days:
            return
        await self.redis.sadd(keys.SETTLE, friend)
        await self._void_referral(keys=[*keys.ledger_keys(friend), keys.referral(friend)],
                                  args=["BLOCKED", at_ms, int(self.ledger.write_off)])
        await self.settle(friend)

    async def statuses(self, made_hashes: list[dict]) -> list[dict[str, str]]:
        """Each member's referrals (friend -> status) from their referrals hashes, with the friend's own
        status where the referrer's record lags: it says "pending" while the friend's is in review (or
        already decided, before settle catches up). Only those are read: one pipelined round trip."""
        made_all = [_friends_of(made) for made in made_hashes]
        lagging = [(i, friend) for i, made in enumerate(made_all) for friend, st in made.items() if st == "pending"]
        if lagging:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, friend in lagging:
                    pipe.hget(keys.referral(friend), "status")
                own = await pipe.execute()
            for (i, friend), status in zip(lagging, own, strict=True):
                made_all[i][friend] = _newer_status("pending", status)
        return made_all

    async def referral_status(self, uid: str, shown: int = 5) -> ReferralStatus:
        """Read only: the member's referrals, the newest few in detail, and the next milestone."""
        statuses = _friends_of(await self.redis.hgetall(keys.referrals_made(uid)))
        friends = []
        now = self.now_ms()
        for friend, made_status in statuses.items():
            ref = await self.redis.hmget(keys.referral(friend), ["status", "created_at", "hold_until", "review_reason"])
            nickname, consent = await self.redis.hmget(keys.member(friend), NAME_FIELDS)
            # the friend's own record leads (the referrer's says "pending" while staff review it)
            status = statuses[friend] = _newer_status(made_status, ref[0])
            created, hold_until = int(ref[1] or 0), int(ref[2] or 0)
            needs = None
            if status == "pending":
                needs = "FIRST_PURCHASE"
            elif status == "review" and ref[3] == HOLD_REASON.encode():  # [budget]: paid from a later month
                needs = "BUDGET"
            elif status == "review":  # the shop checks the order first (rewards/review.py)
                needs = "REVIEW"
            elif status == "completed" and hold_until > now:
                needs = "HOLD"
            friends.append(FriendReferral(user_id=friend, nickname=shown_nickname(nickname, consent), status=status,
                                          needs=needs, minimum_order=self.rules.referral_minimum_order,
                                          at_ms=created))
        friends.sort(key=lambda f: f.at_ms, reverse=True)
        referrals = referral_counts(statuses)
        ahead = [m for m in self.rules.milestones if m.count > referrals.completed]
        return ReferralStatus(referrals=referrals, friends=friends[:shown],
                              next_milestone=ahead[0] if ahead else None,
                              to_next_milestone=ahead[0].count - referrals.completed if ahead else None)

    async def friend_reward(self, friend: str) -> tuple[int, int] | None:
        """(points, held until ms or 0) of the friend's own referral reward (op `referral:friend`), None while unpaid."""
        entry = next((e for e in await self.ledger.entries(friend) if e.get("op") == "referral:friend"), None)
        if entry is None:
            return None
        hold_until = int(await self.redis.hget(keys.referral(friend), "hold_until") or 0)
        return int(entry.get("delta", 0)), hold_until if hold_until > self.now_ms() else 0

    async def milestone_reached(self, referrer: str, friend: str) -> int | None:
        """The milestone count this friend's completed referral reached for the referrer, if it reached one."""
        op = await self.redis.hget(keys.referrals_made(referrer), f"{friend}|milestone")
        if not op or await self.redis.hget(keys.referrals_made(referrer), friend) != b"completed":
            return None
        return int(op.decode().split(":")[1])
